import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { ConfirmDialog } from "@/components/Dialog";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { ApiError } from "@/lib/api-client";
import { usePollInterval } from "@/lib/live-state";
import { deploymentQueries, useSteerDeployment, type Deployment, type SteerAction } from "../api/deployments";
import { DeploymentStateBadge, RolloutBar, TargetStateBadge } from "../components/DeploymentBits";
import { actionsFor, describeStrategy, describeTarget } from "../lib/deploy";

const COUNT_ORDER = ["total", "pending", "sent", "applying", "applied", "failed", "superseded"] as const;
const TARGET_STATES = ["pending", "sent", "applying", "applied", "failed", "superseded"] as const;

const CONFIRM: Record<SteerAction, { title: string; text: string; label: string; danger?: boolean }> = {
  pause: { title: "Pause this rollout?", text: "No further batches are sent. Agents that already got the version keep it.", label: "Pause" },
  resume: { title: "Resume this rollout?", text: "The next batches are sent and the batch timeout starts again.", label: "Resume" },
  cancel: {
    title: "Cancel this rollout?",
    text: "It ends without sending more batches. Agents that got the version keep it: roll back to undo that.",
    label: "Cancel rollout",
    danger: true,
  },
  rollback: {
    title: "Roll back this deployment?",
    text: "Every agent it reached (and still owns) goes back to what it ran before, all at once, as a new deployment.",
    label: "Roll back",
    danger: true,
  },
};

/** The deployment that rolled this one back, from the newest deployments (none: null). */
function useRollbackOf(orgId: string, d: Deployment | undefined) {
  const recent = useQuery({ ...deploymentQueries.list(orgId, {}, null, 100), enabled: d?.state === "rolled_back" });
  return recent.data?.items.find((x) => x.rollback_of === d?.id) ?? null;
}

function Targets({ orgId, id, poll }: { orgId: string; id: string; poll: number }) {
  const [state, setState] = useState<string>("");
  const [stack, setStack] = useState<(string | null)[]>([null]);
  const cursor = stack[stack.length - 1] ?? null;
  const page = useQuery({ ...deploymentQueries.targets(orgId, id, state || undefined, cursor), refetchInterval: poll });
  const items = page.data?.items ?? [];
  return (
    <section className="card card--flush" aria-labelledby="targets-title">
      <header className="card__header card__header--padded">
        <h2 id="targets-title" className="card__title">
          Agents
        </h2>
        <span className="card__spacer" />
        <label className="field field--inline field--row">
          <span className="muted">State</span>
          <select
            value={state}
            aria-label="Filter agents by rollout state"
            onChange={(e) => {
              setState(e.target.value);
              setStack([null]);
            }}
          >
            <option value="">All</option>
            {TARGET_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </header>
      {page.isPending ? (
        <Skeleton rows={5} columns={5} />
      ) : page.isError && !page.data ? (
        <ErrorState error={page.error} onRetry={() => void page.refetch()} />
      ) : items.length === 0 ? (
        <EmptyState title={state ? `No agent is ${state}` : "This deployment has no agents"} />
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="Rollout progress">
            <thead>
              <tr>
                <th>Agent</th>
                <th className="num">Batch</th>
                <th>State</th>
                <th>Agent's message</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {items.map((t) => (
                <tr key={t.gateway_id}>
                  <td className="table__name">
                    <Link to={`/orgs/${orgId}/agents/${t.gateway_id}`}>{t.name}</Link>
                  </td>
                  <td className="num">{t.batch}</td>
                  <td>
                    <TargetStateBadge state={t.state} />
                  </td>
                  <td className={t.error_message ? "text-bad" : "muted"}>{t.error_message ?? "—"}</td>
                  <td>
                    <RelativeTime iso={t.updated_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {(stack.length > 1 || page.data?.next_cursor) && (
        <nav className="pager" aria-label="Pages">
          <button type="button" className="btn btn--small" disabled={stack.length <= 1} onClick={() => setStack(stack.slice(0, -1))}>
            Previous
          </button>
          <button
            type="button"
            className="btn btn--small"
            disabled={!page.data?.next_cursor || page.isPlaceholderData}
            onClick={() => page.data?.next_cursor && setStack([...stack, page.data.next_cursor])}
          >
            Next
          </button>
        </nav>
      )}
    </section>
  );
}

export function DeploymentRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "", deploymentId = "" } = useParams();
  const navigate = useNavigate();
  // Live events refetch it as it moves; while the stream is down it polls every 8 s.
  const poll = usePollInterval();
  const detail = useQuery({ ...deploymentQueries.detail(orgId, deploymentId), refetchInterval: poll });
  const steer = useSteerDeployment(orgId, deploymentId);
  const [confirm, setConfirm] = useState<SteerAction | null>(null);
  const rolledBackBy = useRollbackOf(orgId, detail.data);

  const back = (
    <Link className="crumb" to={`/orgs/${orgId}/deployments`}>
      ← Deployments
    </Link>
  );
  if (detail.isPending) {
    return (
      <div className="page">
        {back}
        <Skeleton rows={8} columns={4} />
      </div>
    );
  }
  if (detail.isError) {
    return (
      <div className="page">
        {back}
        {detail.error instanceof ApiError && detail.error.status === 404 ? (
          <EmptyState title="This deployment does not exist">It may belong to another organisation, or its template was deleted.</EmptyState>
        ) : (
          <ErrorState error={detail.error} onRetry={() => void detail.refetch()} />
        )}
      </div>
    );
  }
  const d = detail.data;
  const can = actionsFor(d);
  const name = d.config_name ? `${d.config_name} v${d.version ?? "?"}` : d.rollback_of ? "Rollback" : "Deployment";

  return (
    <div className="page">
      {back}
      <div className="page-header">
        <div>
          <h1 className="page-header__title">
            {d.config_id && d.config_name ? <Link to={`/orgs/${orgId}/configs/${d.config_id}`}>{name}</Link> : name}{" "}
            <DeploymentStateBadge state={d.state} />
          </h1>
          <p className="page-header__subtitle">
            To <span className="mono">{describeTarget(d.target)}</span> · {describeStrategy(d.strategy)}
            {d.auto_rollback ? " · auto-rollback" : ""} · created <RelativeTime iso={d.created_at} />
          </p>
        </div>
        {canOperate && (
          <div className="page-header__actions">
            {can.pause && (
              <button type="button" className="btn" onClick={() => setConfirm("pause")}>
                Pause
              </button>
            )}
            {can.resume && (
              <button type="button" className="btn btn--primary" onClick={() => setConfirm("resume")}>
                Resume
              </button>
            )}
            {can.cancel && (
              <button type="button" className="btn btn--danger-outline" onClick={() => setConfirm("cancel")}>
                Cancel rollout
              </button>
            )}
            {can.rollback && (
              <button type="button" className="btn btn--danger" onClick={() => setConfirm("rollback")}>
                Roll back
              </button>
            )}
          </div>
        )}
      </div>

      {d.rollback_of && (
        <p className="notice" role="note">
          This is a rollback of <Link to={`/orgs/${orgId}/deployments/${d.rollback_of}`}>an earlier deployment</Link>.
        </p>
      )}
      {d.state === "rolled_back" && (
        <p className="notice notice--warn" role="note">
          Rolled back
          {rolledBackBy ? (
            <>
              {" "}
              by <Link to={`/orgs/${orgId}/deployments/${rolledBackBy.id}`}>the rollback deployment</Link> (
              <DeploymentStateBadge state={rolledBackBy.state} />)
            </>
          ) : null}
          {d.reason ? `: ${d.reason}` : ""}
        </p>
      )}
      {d.reason && d.state !== "rolled_back" && (
        <p className={`notice ${d.state === "failed" ? "notice--error" : ""}`} role="note">
          {d.reason}
        </p>
      )}
      {d.message && <p className="muted">“{d.message}”</p>}

      <section className="card" aria-labelledby="progress-title">
        <header className="card__header">
          <h2 id="progress-title" className="card__title">
            Progress
          </h2>
          <span className="card__spacer" />
          <span className="muted">
            batch {Math.min(d.current_batch, Math.max(d.batch_count, 1))} of {Math.max(d.batch_count, 1)}
          </span>
        </header>
        <RolloutBar counts={d.counts} />
        <dl className="counts" aria-label="Counts">
          {COUNT_ORDER.map((k) => (
            <div key={k} className={`counts__item counts__item--${k}`}>
              <dt>{k}</dt>
              <dd className="num">{d.counts[k]}</dd>
            </div>
          ))}
        </dl>
      </section>

      <Targets orgId={orgId} id={deploymentId} poll={poll} />

      {confirm && (
        <ConfirmDialog
          open
          onOpenChange={(o) => !o && setConfirm(null)}
          title={CONFIRM[confirm].title}
          description={CONFIRM[confirm].text}
          confirmLabel={CONFIRM[confirm].label}
          danger={CONFIRM[confirm].danger}
          onConfirm={async () => {
            const answer = await steer.mutateAsync(confirm);
            if (confirm === "rollback") navigate(`/orgs/${orgId}/deployments/${answer.id}`);
          }}
        />
      )}
    </div>
  );
}
