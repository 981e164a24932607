import { useMemo, useState } from "react";
import { foldRows, sideBySide, type Cell, type Row } from "../lib/side-by-side";

function Side({ cell, kind, side }: { cell: Cell | null; kind: Row["kind"]; side: "left" | "right" }) {
  const changed = kind !== "same" && cell !== null;
  const cls = changed ? (side === "left" ? "sbs__cell--removed" : "sbs__cell--added") : cell ? "" : "sbs__cell--empty";
  return (
    <>
      <td className={`sbs__no ${cls}`} aria-hidden="true">
        {cell?.no ?? ""}
      </td>
      <td className={`sbs__cell ${cls}`}>
        {changed && <span className="sr-only">{side === "left" ? "removed: " : "added: "}</span>}
        {cell?.text ?? ""}
      </td>
    </>
  );
}

/** Two bodies side by side: removed lines red on the left, added ones green on the right. */
export function SideBySideDiff({ before, after, fromLabel, toLabel }: { before: string; after: string; fromLabel: string; toLabel: string }) {
  const diff = useMemo(() => sideBySide(before, after), [before, after]);
  const [all, setAll] = useState(false);
  if (!diff) return <p className="notice notice--warn">These versions are too large to compare in the browser.</p>;
  if (diff.added === 0 && diff.removed === 0) return <p className="notice">The two versions are identical.</p>;
  const shown = all ? diff.rows.map((_, i) => i) : foldRows(diff.rows);
  return (
    <div className="sbs">
      <div className="sbs__bar">
        <span className="text-good">+{diff.added}</span> <span className="text-bad">−{diff.removed}</span>
        <span className="muted"> lines</span>
        <span className="card__spacer" />
        <label className="checkbox">
          <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} />
          <span>Show unchanged lines</span>
        </label>
      </div>
      <div className="sbs__scroll">
        <table className="sbs__table" aria-label={`Changes from ${fromLabel} to ${toLabel}`}>
          <colgroup>
            <col className="sbs__col-no" />
            <col />
            <col className="sbs__col-no" />
            <col />
          </colgroup>
          <thead>
            <tr>
              <th colSpan={2}>{fromLabel}</th>
              <th colSpan={2}>{toLabel}</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((index, k) => {
              if (index === null) {
                return (
                  <tr key={`gap-${k}`} className="sbs__gap">
                    <td colSpan={4}>⋯</td>
                  </tr>
                );
              }
              const row = diff.rows[index] as Row;
              return (
                <tr key={index} className={`sbs__row sbs__row--${row.kind}`}>
                  <Side cell={row.left} kind={row.kind} side="left" />
                  <Side cell={row.right} kind={row.kind} side="right" />
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
}
