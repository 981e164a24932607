import { formatDuration, formatRelative } from "./time";

const NOW = Date.parse("2026-01-01T12:00:00Z");
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

describe("formatRelative", () => {
  it.each([
    [0, "just now"],
    [4, "just now"],
    [15, "15 s ago"],
    [59, "59 s ago"],
    [60, "1 min ago"],
    [3599, "59 min ago"],
    [3600, "1 h ago"],
    [86_400 * 3 + 5, "3 d ago"],
    [-86_400 * 29, "in 29 d"],
    [-30, "in 30 s"],
    [-(86_400 * 30 - 5), "in 30 d"],
  ])("%i s ago reads %s", (secs, text) => {
    expect(formatRelative(ago(secs), NOW)).toBe(text);
  });

  it("says never for a missing time and unknown for garbage", () => {
    expect(formatRelative(null, NOW)).toBe("never");
    expect(formatRelative("not a date", NOW)).toBe("unknown");
  });
});

describe("formatDuration", () => {
  it.each([
    [null, "—"],
    [42, "42 s"],
    [720, "12 min"],
    [3600 * 3 + 240, "3 h 4 min"],
    [7200, "2 h"],
    [86_400 * 2 + 3600 * 5, "2 d 5 h"],
  ])("%s reads %s", (secs, text) => {
    expect(formatDuration(secs)).toBe(text);
  });
});
