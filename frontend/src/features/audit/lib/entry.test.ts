import { actorText, filtersFrom, objectFilter, objectText } from "./entry";

describe("audit entries", () => {
  it("names the actor", () => {
    expect(actorText({ actor_kind: "user", actor_label: "ann@example.com", actor_id: "u1" })).toEqual({ name: "ann@example.com", kind: "user" });
    expect(actorText({ actor_kind: "api_key", actor_label: null, actor_id: "0123456789abcdef" })).toEqual({ name: "API key 01234567", kind: "API key" });
    expect(actorText({ actor_kind: "anonymous", actor_label: null, actor_id: null })).toEqual({ name: "anonymous", kind: "anonymous" });
  });
  it("names the object and filters by it", () => {
    const e = { object_type: "alert_rule", object_id: "24cb266a-1331-4e5b-866f-73a198e9854b" };
    expect(objectText(e)).toBe("alert rule 24cb266a…");
    expect(objectFilter(e)).toBe("alert_rule:24cb266a-1331-4e5b-866f-73a198e9854b");
    expect(objectText({ object_type: null, object_id: null })).toBe("—");
    expect(objectFilter({ object_type: null, object_id: "x" })).toBe("x");
    expect(objectFilter({ object_type: "user", object_id: null })).toBeNull();
  });
  it("reads the filters from the URL", () => {
    expect(filtersFrom(new URLSearchParams("actor=+ann@x.io+&action=&object=gateway:1&other=1"))).toEqual({ actor: "ann@x.io", object: "gateway:1" });
  });
});
