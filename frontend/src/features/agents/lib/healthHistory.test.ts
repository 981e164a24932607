import { describePoint, stackBars, stripSegments, type FleetPoint } from "./healthHistory";

const point = (healthy: number, warning = 0, unhealthy = 0, offline = 0, start = "2026-01-01T00:00:00Z"): FleetPoint => ({
  start,
  end: start,
  healthy,
  warning,
  unhealthy,
  offline,
});

describe("stackBars", () => {
  it("stacks healthy at the bottom, scaled to the largest total", () => {
    const [a, b] = stackBars([point(2, 1, 0, 1), point(1)], 100, 40, 0);
    expect(a!.x).toBe(0);
    expect(a!.width).toBe(50);
    expect(a!.total).toBe(4);
    // 4 is the max: 2 healthy = 20 px from the bottom, then 1 warning, no unhealthy rect, 1 offline.
    expect(a!.rects).toEqual([
      { health: "healthy", y: 20, height: 20 },
      { health: "warning", y: 10, height: 10 },
      { health: "offline", y: 0, height: 10 },
    ]);
    expect(b!.x).toBe(50);
    expect(b!.rects).toEqual([{ health: "healthy", y: 30, height: 10 }]);
  });
  it("draws nothing for no buckets and no rects for an empty fleet", () => {
    expect(stackBars([], 100, 40)).toEqual([]);
    expect(stackBars([point(0)], 100, 40)[0]!.rects).toEqual([]);
  });
  it("keeps a gap between bars", () => {
    expect(stackBars([point(1), point(1)], 100, 40, 2)[0]!.width).toBe(48);
  });
  it("describes the latest bucket", () => {
    expect(describePoint(point(3, 1))).toBe("Agent health now: 3 healthy, 1 warning, 0 unhealthy, 0 offline");
    expect(describePoint(undefined)).toBe("No health history yet");
  });
});

describe("stripSegments", () => {
  const start = Date.parse("2026-01-01T00:00:00Z");
  const now = start + 100_000;
  const at = (ms: number) => new Date(start + ms).toISOString();

  it("is the current health throughout without transitions", () => {
    expect(stripSegments([], start, now, "healthy")).toEqual([{ health: "healthy", start: 0, end: 1 }]);
  });
  it("colours from the first transition's from, then each to", () => {
    const segs = stripSegments(
      [
        { from: "healthy", to: "unhealthy", reason: "silent", at: at(25_000) },
        { from: "unhealthy", to: "healthy", reason: "connected", at: at(75_000) },
      ],
      start,
      now,
      "healthy",
    );
    expect(segs).toEqual([
      { health: "healthy", start: 0, end: 0.25 },
      { health: "unhealthy", start: 0.25, end: 0.75 },
      { health: "healthy", start: 0.75, end: 1 },
    ]);
  });
  it("draws nothing before a gateway's creation and clamps older transitions", () => {
    expect(
      stripSegments([{ from: null, to: "unhealthy", reason: "registered", at: at(50_000) }], start, now, "unhealthy"),
    ).toEqual([{ health: "unhealthy", start: 0.5, end: 1 }]);
    expect(
      stripSegments(
        [
          { from: null, to: "unhealthy", reason: "registered", at: at(-500_000) },
          { from: "unhealthy", to: "warning", reason: "connected", at: at(-1_000) },
        ],
        start,
        now,
        "warning",
      ),
    ).toEqual([{ health: "warning", start: 0, end: 1 }]);
  });
  it("merges neighbours with the same health and sorts by time", () => {
    expect(
      stripSegments(
        [
          { from: "healthy", to: "healthy", reason: "heartbeat", at: at(60_000) },
          { from: "warning", to: "healthy", reason: "heartbeat", at: at(20_000) },
        ],
        start,
        now,
        "healthy",
      ),
    ).toEqual([
      { health: "warning", start: 0, end: 0.2 },
      { health: "healthy", start: 0.2, end: 1 },
    ]);
  });
});
