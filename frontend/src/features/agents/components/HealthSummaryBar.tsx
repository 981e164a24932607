import { HEALTH_STATES, type FleetSummary } from "../api/gateways";

/** Fleet counts by health; each count is also a filter (pressed = active). */
export function HealthSummaryBar({
  summary,
  active,
  onPick,
}: {
  summary: FleetSummary | undefined;
  active: string | undefined;
  onPick: (health: string | undefined) => void;
}) {
  const tiles: { key: string | undefined; label: string; count: number | undefined }[] = [
    { key: undefined, label: "All agents", count: summary?.total },
    ...HEALTH_STATES.map((h) => ({ key: h as string, label: h[0]?.toUpperCase() + h.slice(1), count: summary?.by_health[h] })),
  ];
  return (
    <div className="summary" role="group" aria-label="Filter by health">
      {tiles.map((tile) => (
        <button
          key={tile.label}
          type="button"
          className={`summary__tile summary__tile--${tile.key ?? "all"}`}
          aria-pressed={active === tile.key}
          onClick={() => onPick(active === tile.key ? undefined : tile.key)}
        >
          <span className="summary__count">{tile.count ?? "–"}</span>
          <span className="summary__label">
            {tile.key && <span className="health__dot" aria-hidden="true" />}
            {tile.label}
          </span>
        </button>
      ))}
    </div>
  );
}
