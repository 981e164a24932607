import { tokenState, usesText } from "./token-state";

const NOW = Date.parse("2026-06-01T00:00:00Z");
const base = {
  is_active: true,
  revoked_at: null,
  expires_at: "2026-07-01T00:00:00Z",
  max_uses: 1 as number | null,
  use_count: 0,
};

describe("tokenState", () => {
  it("is active while usable", () => expect(tokenState(base, NOW)).toBe("active"));
  it("is used up at max_uses", () => expect(tokenState({ ...base, use_count: 1 }, NOW)).toBe("used up"));
  it("never runs out when unlimited", () => expect(tokenState({ ...base, max_uses: null, use_count: 999 }, NOW)).toBe("active"));
  it("is expired from expires_at on", () => {
    expect(tokenState({ ...base, expires_at: "2026-06-01T00:00:00Z" }, NOW)).toBe("expired");
    expect(tokenState({ ...base, expires_at: "2026-05-01T00:00:00Z", use_count: 1 }, NOW)).toBe("expired");
  });
  it("is revoked above all", () => {
    expect(tokenState({ ...base, revoked_at: "2026-05-01T00:00:00Z", expires_at: "2026-05-01T00:00:00Z" }, NOW)).toBe("revoked");
    expect(tokenState({ ...base, is_active: false }, NOW)).toBe("revoked");
  });
  it("formats uses", () => {
    expect(usesText({ max_uses: null, use_count: 3 })).toBe("3 / unlimited");
    expect(usesText({ max_uses: 10, use_count: 3 })).toBe("3 / 10");
  });
});
