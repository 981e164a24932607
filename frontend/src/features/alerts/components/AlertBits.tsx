import type { Alert } from "../api/alerts";

export function AlertStateBadge({ alert }: { alert: Pick<Alert, "state" | "silenced"> }) {
  return (
    <span className="chips">
      <span className={`badge badge--${alert.state === "firing" ? "bad" : "good"}`}>{alert.state}</span>
      {alert.silenced && alert.state === "firing" && <span className="badge badge--muted">silenced</span>}
    </span>
  );
}

export function EnabledBadge({ enabled }: { enabled: boolean }) {
  return <span className={`badge badge--${enabled ? "good" : "muted"}`}>{enabled ? "enabled" : "disabled"}</span>;
}
