/**
 * Pure geometry for the health charts: fleet buckets -> stacked bars, one gateway's
 * transitions -> coloured segments of a time strip. No React, no DOM: unit-tested.
 */
export const HEALTH_ORDER = ["healthy", "warning", "unhealthy", "offline"] as const;
export type Health = (typeof HEALTH_ORDER)[number];

export interface FleetPoint {
  start: string;
  end: string;
  healthy: number;
  warning: number;
  unhealthy: number;
  offline: number;
}

export interface StackRect {
  health: Health;
  y: number;
  height: number;
}

export interface StackBar {
  x: number;
  width: number;
  total: number;
  rects: StackRect[];
}

/**
 * One bar per bucket, `width` wide in total across all buckets, `height` tall at the largest
 * total. Stacked from the bottom: healthy, warning, unhealthy, offline. Zero counts have no rect.
 */
export function stackBars(points: readonly FleetPoint[], width: number, height: number, gap = 1): StackBar[] {
  if (points.length === 0) return [];
  const max = Math.max(1, ...points.map((p) => HEALTH_ORDER.reduce((s, h) => s + p[h], 0)));
  const slot = width / points.length;
  const barWidth = Math.max(0.5, slot - gap);
  return points.map((p, i) => {
    let y = height;
    const rects: StackRect[] = [];
    let total = 0;
    for (const health of HEALTH_ORDER) {
      const count = p[health];
      total += count;
      if (count <= 0) continue;
      const h = (count / max) * height;
      y -= h;
      rects.push({ health, y, height: h });
    }
    return { x: i * slot, width: barWidth, total, rects };
  });
}

/** "Now: 3 healthy, 1 warning, 0 unhealthy, 0 offline", for the chart's accessible name. */
export function describePoint(point: FleetPoint | undefined): string {
  if (!point) return "No health history yet";
  return `Agent health now: ${HEALTH_ORDER.map((h) => `${point[h]} ${h}`).join(", ")}`;
}

export interface Transition {
  from: string | null;
  to: string;
  reason: string | null;
  at: string;
}

export interface StripSegment {
  health: string;
  /** Fractions of the strip's width, 0..1. */
  start: number;
  end: number;
}

/**
 * The window [windowStart, now] coloured by health. `transitions` is oldest first (the API's
 * order) and may include transitions before the window. Before the first known transition the
 * health is that transition's `from` (none: the gateway did not exist yet, nothing is drawn);
 * without any transition the whole window is `current`.
 */
export function stripSegments(
  transitions: readonly Transition[],
  windowStart: number,
  now: number,
  current: string,
): StripSegment[] {
  const span = now - windowStart;
  if (span <= 0) return [];
  const sorted = [...transitions].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const frac = (t: number) => Math.min(1, Math.max(0, (t - windowStart) / span));
  const segments: StripSegment[] = [];
  const first = sorted[0];
  let health: string | null = first ? first.from : current;
  let cursor = 0;
  for (const t of sorted) {
    const at = frac(Date.parse(t.at));
    if (health !== null && at > cursor) segments.push({ health, start: cursor, end: at });
    cursor = Math.max(cursor, at);
    health = t.to;
  }
  if (health !== null && cursor < 1) segments.push({ health, start: cursor, end: 1 });
  // Neighbours with the same health (a `heartbeat` transition keeps it) become one segment.
  const merged: StripSegment[] = [];
  for (const s of segments) {
    const last = merged[merged.length - 1];
    if (last && last.health === s.health && last.end === s.start) last.end = s.end;
    else merged.push({ ...s });
  }
  return merged;
}
