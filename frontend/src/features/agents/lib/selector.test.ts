import { addRequirement, mergeLabels, normalizeSelector, parseLabelAssignments, splitRequirements } from "./selector";

describe("normalizeSelector", () => {
  it("is undefined for a blank box, so no selector= is sent", () => {
    expect(normalizeSelector("")).toBeUndefined();
    expect(normalizeSelector("   ,  ")).toBeUndefined();
    expect(normalizeSelector(undefined)).toBeUndefined();
  });
  it("tidies spaces and keeps commas inside set expressions", () => {
    expect(normalizeSelector("  env=prod ,tier  in (a, b),  !legacy ")).toBe("env=prod, tier in (a, b), !legacy");
    expect(splitRequirements("a in (x,y),b")).toEqual(["a in (x,y)", "b"]);
  });
});

describe("addRequirement", () => {
  it("appends a chip's key=value once", () => {
    expect(addRequirement(undefined, "env", "prod")).toBe("env=prod");
    expect(addRequirement("team=core", "env", "prod")).toBe("team=core, env=prod");
    expect(addRequirement("env = prod", "env", "prod")).toBe("env = prod");
    expect(addRequirement("env==prod", "env", "prod")).toBe("env==prod");
  });
});

describe("parseLabelAssignments", () => {
  it("parses commas and new lines", () => {
    expect(parseLabelAssignments("env=prod, team=core\nzone=")).toEqual({
      ok: true,
      labels: { env: "prod", team: "core", zone: "" },
    });
  });
  it("names the bad item", () => {
    expect(parseLabelAssignments("env")).toEqual({ ok: false, error: '"env" is not key=value' });
    expect(parseLabelAssignments("=x")).toMatchObject({ ok: false });
    expect(parseLabelAssignments("env=has space")).toMatchObject({ ok: false });
    expect(parseLabelAssignments("")).toMatchObject({ ok: false, error: "Enter at least one key=value" });
  });
});

describe("mergeLabels", () => {
  it("merges and reports no-ops as null", () => {
    expect(mergeLabels({ a: "1" }, { b: "2" })).toEqual({ a: "1", b: "2" });
    expect(mergeLabels({ a: "1" }, { a: "1" })).toBeNull();
    expect(mergeLabels({ a: "1" }, { a: "3" })).toEqual({ a: "3" });
  });
});
