/** Labels as `key=value` chips; `onPick` (optional) makes each chip a filter button. */
export function LabelChips({
  labels,
  onPick,
  max = 4,
}: {
  labels: Record<string, unknown>;
  onPick?: (key: string, value: string) => void;
  max?: number;
}) {
  const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return <span className="muted">—</span>;
  const shown = entries.slice(0, max);
  const rest = entries.length - shown.length;
  return (
    <span className="chips">
      {shown.map(([key, value]) =>
        onPick ? (
          <button
            type="button"
            key={key}
            className="chip chip--button"
            title={`Filter by ${key}=${String(value)}`}
            onClick={(e) => {
              e.stopPropagation();
              onPick(key, String(value));
            }}
          >
            <span className="chip__key">{key}</span>=<span className="chip__value">{String(value)}</span>
          </button>
        ) : (
          <span key={key} className="chip">
            <span className="chip__key">{key}</span>=<span className="chip__value">{String(value)}</span>
          </span>
        ),
      )}
      {rest > 0 && (
        <span className="chip chip--more" title={entries.slice(max).map(([k, v]) => `${k}=${String(v)}`).join(", ")}>
          +{rest}
        </span>
      )}
    </span>
  );
}
