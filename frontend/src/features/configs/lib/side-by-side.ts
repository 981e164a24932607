/**
 * Two versions side by side: the line diff (features/agents/lib/diff) laid out in rows, each
 * with the old line on the left and the new one on the right. A run of removed lines followed
 * by a run of added ones is a change: they are paired row by row, the longer run's rest faces
 * an empty cell. Line numbers count each side's own lines from 1.
 */
import { diffLines, type DiffLine } from "@/features/agents/lib/diff";

export interface Cell {
  no: number;
  text: string;
}

export interface Row {
  kind: "same" | "changed" | "removed" | "added";
  left: Cell | null;
  right: Cell | null;
}

export function alignRows(lines: readonly DiffLine[]): Row[] {
  const rows: Row[] = [];
  let leftNo = 0;
  let rightNo = 0;
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] as DiffLine;
    if (line.kind === "same") {
      rows.push({ kind: "same", left: { no: ++leftNo, text: line.text }, right: { no: ++rightNo, text: line.text } });
      i++;
      continue;
    }
    const removed: string[] = [];
    const added: string[] = [];
    while (i < lines.length && (lines[i] as DiffLine).kind !== "same") {
      const l = lines[i] as DiffLine;
      (l.kind === "removed" ? removed : added).push(l.text);
      i++;
    }
    for (let k = 0; k < Math.max(removed.length, added.length); k++) {
      const left = k < removed.length ? { no: ++leftNo, text: removed[k] as string } : null;
      const right = k < added.length ? { no: ++rightNo, text: added[k] as string } : null;
      rows.push({ kind: left && right ? "changed" : left ? "removed" : "added", left, right });
    }
  }
  return rows;
}

export interface SideBySide {
  rows: Row[];
  added: number;
  removed: number;
}

/** The rows for two bodies, or null when they are too large to compare in the browser. */
export function sideBySide(before: string, after: string): SideBySide | null {
  const lines = diffLines(before, after);
  if (!lines) return null;
  return {
    rows: alignRows(lines),
    added: lines.filter((l) => l.kind === "added").length,
    removed: lines.filter((l) => l.kind === "removed").length,
  };
}

/** Indexes of the rows to show: every change with `context` rows around it; null = a gap. */
export function foldRows(rows: readonly Row[], context = 3): (number | null)[] {
  const keep = new Array<boolean>(rows.length).fill(false);
  rows.forEach((r, i) => {
    if (r.kind === "same") return;
    for (let k = Math.max(0, i - context); k <= Math.min(rows.length - 1, i + context); k++) keep[k] = true;
  });
  const out: (number | null)[] = [];
  rows.forEach((_, i) => {
    if (keep[i]) out.push(i);
    else if (out.length === 0 || out[out.length - 1] !== null) out.push(null);
  });
  return out;
}
