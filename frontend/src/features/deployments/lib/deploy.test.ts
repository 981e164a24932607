import { actionsFor, describeStrategy, describeTarget, parseBatches, targetBody } from "./deploy";

describe("parseBatches", () => {
  it("reads counts and percentages separated by commas or spaces", () => {
    expect(parseBatches("1, 10%  50% ,100%")).toEqual({ ok: true, batches: [1, "10%", "50%", "100%"] });
  });

  it("refuses what the server would refuse, saying why", () => {
    expect(parseBatches("")).toMatchObject({ ok: false });
    expect(parseBatches("0")).toMatchObject({ ok: false, error: expect.stringContaining("“0”") });
    expect(parseBatches("150%")).toMatchObject({ ok: false, error: expect.stringContaining("1% to 100%") });
    expect(parseBatches("ten")).toMatchObject({ ok: false });
    expect(parseBatches(Array(21).fill("1").join(","))).toMatchObject({ ok: false, error: "At most 20 batches" });
  });
});

it("targetBody and describeTarget agree on the three targets", () => {
  expect(targetBody({ kind: "selector", selector: " env=prod " })).toEqual({ selector: "env=prod" });
  expect(targetBody({ kind: "gateways", ids: ["a", "b"] })).toEqual({ gateway_ids: ["a", "b"] });
  expect(targetBody({ kind: "all" })).toEqual({ all: true });
  expect(describeTarget({ selector: "env=prod" })).toBe("env=prod");
  expect(describeTarget({ gateway_ids: ["a"] })).toBe("1 gateway");
  expect(describeTarget({ all: true })).toBe("all gateways");
});

it("describeStrategy", () => {
  expect(describeStrategy({ type: "all-at-once" })).toBe("all at once");
  expect(describeStrategy({ type: "staged", batches: [1, "50%", "100%"] })).toBe("staged 1 → 50% → 100%");
});

it("actionsFor offers what the server allows in each state", () => {
  expect(actionsFor({ state: "rolling_out", rollback_of: null })).toEqual({ pause: true, resume: false, cancel: true, rollback: true });
  expect(actionsFor({ state: "paused", rollback_of: null })).toEqual({ pause: false, resume: true, cancel: true, rollback: true });
  expect(actionsFor({ state: "failed", rollback_of: null })).toEqual({ pause: false, resume: false, cancel: false, rollback: true });
  expect(actionsFor({ state: "rolled_back", rollback_of: null }).rollback).toBe(false);
  expect(actionsFor({ state: "completed", rollback_of: "x" }).rollback).toBe(false);
});
