import type { Deployment } from "../api/deployments";
import { STATE_TONE, TARGET_TONE, stateLabel } from "../lib/deploy";

export function DeploymentStateBadge({ state }: { state: string }) {
  return <span className={`badge badge--${STATE_TONE[state] ?? "muted"}`}>{stateLabel(state)}</span>;
}

export function TargetStateBadge({ state }: { state: string }) {
  return <span className={`badge badge--${TARGET_TONE[state] ?? "muted"}`}>{state}</span>;
}

const SEGMENTS = ["applied", "failed", "applying", "sent", "pending", "superseded"] as const;

/** One bar for a rollout: applied, failed, in flight and waiting, in proportion. */
export function RolloutBar({ counts, compact }: { counts: Deployment["counts"]; compact?: boolean }) {
  const total = counts.total || 1;
  const label = SEGMENTS.filter((s) => counts[s] > 0)
    .map((s) => `${counts[s]} ${s}`)
    .join(", ");
  return (
    <div className={`rollout ${compact ? "rollout--compact" : ""}`}>
      <div className="rollout__bar" role="img" aria-label={`Rollout: ${label || "no gateways"}`}>
        {SEGMENTS.map((s) =>
          counts[s] > 0 ? <span key={s} className={`rollout__seg rollout__seg--${s}`} style={{ width: `${(counts[s] / total) * 100}%` }} /> : null,
        )}
      </div>
      {compact ? (
        <span className="rollout__text num">
          {counts.applied}/{counts.total}
          {counts.failed > 0 && <span className="text-bad"> · {counts.failed} failed</span>}
        </span>
      ) : null}
    </div>
  );
}
