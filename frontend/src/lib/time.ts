/** Time formatting shared by every page: short, stable, and the same wording everywhere. */

const UNITS: [number, string][] = [
  [86_400, "d"],
  [3_600, "h"],
  [60, "min"],
];

/** "15 s ago", "3 min ago", "2 h ago", "4 d ago"; "in 29 d" for the future; "never" for null. */
export function formatRelative(iso: string | null | undefined, now: number): string {
  if (!iso) return "never";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "unknown";
  const delta = Math.round((now - then) / 1000);
  const future = delta < 0;
  const secs = Math.abs(delta);
  let text: string;
  if (secs < 5 && !future) return "just now";
  if (secs < 60) text = `${secs} s`;
  else {
    const [size, unit] = UNITS.find(([s]) => secs >= s) ?? [60, "min"];
    // The past rounds down ("59 s" is not yet "1 min ago"); the future rounds to the nearest,
    // so a 30-day token created a moment ago expires "in 30 d", not "in 29 d".
    text = `${future ? Math.round(secs / size) : Math.floor(secs / size)} ${unit}`;
  }
  return future ? `in ${text}` : `${text} ago`;
}

/** Durations such as uptime: "45 s", "12 min", "3 h 4 min", "2 d 5 h". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || seconds < 0) return "—";
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3_600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) {
    const h = Math.floor(seconds / 3_600);
    const m = Math.floor((seconds % 3_600) / 60);
    return m ? `${h} h ${m} min` : `${h} h`;
  }
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3_600);
  return h ? `${d} d ${h} h` : `${d} d`;
}

export function formatTimestamp(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "—";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}
