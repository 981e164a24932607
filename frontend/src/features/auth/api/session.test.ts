import { atLeast, roleIn, type Me } from "./session";

const me = (role: "viewer" | "operator" | "admin", superuser = false): Me => ({
  id: "u",
  email: "a@b.c",
  is_superuser: superuser,
  api_key_id: null,
  organizations: [{ id: "o1", name: "one", role }],
});

describe("roles", () => {
  it("reads the role for the org in the URL", () => {
    expect(roleIn(me("viewer"), "o1")).toBe("viewer");
    expect(roleIn(me("viewer"), "o2")).toBeNull();
    expect(roleIn(me("viewer", true), "o2")).toBe("admin");
  });
  it("orders roles", () => {
    expect(atLeast("viewer", "operator")).toBe(false);
    expect(atLeast("operator", "operator")).toBe(true);
    expect(atLeast("admin", "operator")).toBe(true);
    expect(atLeast(null, "viewer")).toBe(false);
  });
});
