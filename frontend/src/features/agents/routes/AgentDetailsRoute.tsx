import { useQuery } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { ConfirmDialog } from "@/components/Dialog";
import { HealthIndicator } from "@/components/HealthIndicator";
import { RelativeTime } from "@/components/RelativeTime";
import { ErrorState, Skeleton } from "@/components/States";
import { StatusBadge } from "@/components/StatusBadge";
import { GatewayDeployments } from "@/features/deployments/components/GatewayDeployments";
import { ApiError } from "@/lib/api-client";
import { usePollInterval } from "@/lib/live-state";
import { formatDuration } from "@/lib/time";
import { gatewayQueries, useDeactivateGateway, useDeleteGateway } from "../api/gateways";
import { AgentConfigViewer } from "../components/AgentConfigViewer";
import { ComponentHealthList } from "../components/ComponentHealthList";
import { HealthTimeline } from "../components/HealthTimeline";
import { LabelsEditor } from "../components/LabelsEditor";
import { PipelineGraph } from "../components/PipelineGraph";
import type { HealthNode } from "../lib/pipeline";
import { transportLabel } from "../lib/selector";

function Facts({ items }: { items: [string, ReactNode][] }) {
  return (
    <dl className="facts">
      {items.map(([term, value]) => (
        <div className="facts__row" key={term}>
          <dt>{term}</dt>
          <dd>{value ?? <span className="muted">—</span>}</dd>
        </div>
      ))}
    </dl>
  );
}

const number = (n: number | null | undefined) => (n === null || n === undefined ? null : n.toLocaleString());

export function AgentDetailsRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "", agentId = "" } = useParams();
  const navigate = useNavigate();
  const poll = usePollInterval();
  const detail = useQuery({ ...gatewayQueries.detail(orgId, agentId), refetchInterval: poll });
  const report = useQuery({ ...gatewayQueries.status(orgId, agentId), refetchInterval: poll });
  const deactivate = useDeactivateGateway(orgId);
  const remove = useDeleteGateway(orgId);
  const [confirm, setConfirm] = useState<"deactivate" | "delete" | null>(null);

  const back = (
    <Link className="crumb" to={`/orgs/${orgId}/agents`}>
      ← Agents
    </Link>
  );

  if (detail.isPending || report.isPending) {
    return (
      <div className="page">
        {back}
        <Skeleton rows={10} columns={3} />
      </div>
    );
  }
  const error = detail.error ?? report.error;
  if (error || !detail.data || !report.data) {
    return (
      <div className="page">
        {back}
        {error instanceof ApiError && error.status === 404 ? (
          <div className="empty">
            <h3 className="empty__title">This agent does not exist (any more)</h3>
            <p className="empty__text">It may have been deleted. Go back to the agent list.</p>
          </div>
        ) : (
          <ErrorState error={error} onRetry={() => void Promise.all([detail.refetch(), report.refetch()])} />
        )}
      </div>
    );
  }

  const g = detail.data;
  const r = report.data;
  const agent = r.agent;
  const componentHealth = (agent?.component_health ?? null) as HealthNode | null;
  const runningYaml = r.config.effective?.config_yaml ?? r.config.config_yaml;

  return (
    <div className="page">
      {back}
      <div className="page-header">
        <div>
          <h1 className="page-header__title">
            {g.name} <StatusBadge status={r.status} /> <HealthIndicator health={r.health.status} score={r.health.health_score} />
          </h1>
          <p className="page-header__subtitle mono">{g.instance_id}</p>
        </div>
        {canOperate && (
          <div className="page-header__actions">
            {r.status !== "inactive" && (
              <button type="button" className="btn btn--danger-outline" onClick={() => setConfirm("deactivate")}>
                Deactivate
              </button>
            )}
            <button type="button" className="btn btn--danger" onClick={() => setConfirm("delete")}>
              Delete
            </button>
          </div>
        )}
      </div>

      <div className="grid grid--cards">
        <section className="card" aria-labelledby="health-title">
          <header className="card__header">
            <h2 id="health-title" className="card__title">
              Health
            </h2>
          </header>
          <Facts
            items={[
              ["Status", <StatusBadge key="s" status={r.status} />],
              ["Health", <HealthIndicator key="h" health={r.health.status} score={r.health.health_score} />],
              ["Last seen", <RelativeTime key="l" iso={r.health.last_seen} />],
              ["Uptime", formatDuration(r.health.uptime_seconds)],
              ["Registered", <RelativeTime key="c" iso={g.created_at} />],
            ]}
          />
        </section>
        <section className="card" aria-labelledby="version-title">
          <header className="card__header">
            <h2 id="version-title" className="card__title">
              Agent
            </h2>
          </header>
          <Facts
            items={[
              ["Version", r.version.agent_version && <span className="mono">{r.version.agent_version}</span>],
              ["Collector", r.version.otel_version && <span className="mono">{r.version.otel_version}</span>],
              ["Transport", `${transportLabel(g.transport)}${agent ? (agent.connected ? " · connected" : " · not connected") : ""}`],
              ["Host", g.hostname && `${g.hostname}${g.ip_address ? ` (${g.ip_address})` : ""}`],
              [
                "Capabilities",
                r.version.capabilities.length ? (
                  <span className="chips chips--wrap">
                    {r.version.capabilities.map((c) => (
                      <span key={c} className="chip">
                        {c}
                      </span>
                    ))}
                  </span>
                ) : null,
              ],
            ]}
          />
        </section>
        <section className="card" aria-labelledby="metrics-title">
          <header className="card__header">
            <h2 id="metrics-title" className="card__title">
              Metrics
            </h2>
          </header>
          <div className="stats">
            <div className="stat">
              <span className="stat__value">{number(r.metrics.logs_processed) ?? "—"}</span>
              <span className="stat__label">logs processed</span>
            </div>
            <div className="stat">
              <span className={`stat__value ${r.metrics.errors ? "text-bad" : ""}`}>{number(r.metrics.errors) ?? "—"}</span>
              <span className="stat__label">errors</span>
            </div>
            <div className="stat">
              <span className="stat__value">{r.metrics.latency_ms === null || r.metrics.latency_ms === undefined ? "—" : `${r.metrics.latency_ms} ms`}</span>
              <span className="stat__label">latency</span>
            </div>
          </div>
          <p className="card__footer muted">
            {r.metrics.last_updated ? (
              <>
                Reported <RelativeTime iso={r.metrics.last_updated} />
              </>
            ) : (
              "The agent has not reported metrics yet"
            )}
          </p>
        </section>
        <LabelsEditor orgId={orgId} gateway={g} editable={canOperate} />
        <HealthTimeline orgId={orgId} gatewayId={g.id} current={r.health.status} />
      </div>

      <PipelineGraph yaml={runningYaml} health={componentHealth} />
      <div className={componentHealth ? "grid grid--config" : ""}>
        <AgentConfigViewer config={r.config} agentName={g.name} />
        {componentHealth && <ComponentHealthList health={componentHealth} />}
      </div>
      <GatewayDeployments orgId={orgId} gatewayId={g.id} />

      <ConfirmDialog
        open={confirm === "deactivate"}
        onOpenChange={(o) => !o && setConfirm(null)}
        title={`Deactivate ${g.name}?`}
        description="It goes offline at once: its OpAMP token is revoked and a live connection is closed. It needs a registration token to come back."
        confirmLabel="Deactivate"
        danger
        onConfirm={() => deactivate.mutateAsync(g.id)}
      />
      <ConfirmDialog
        open={confirm === "delete"}
        onOpenChange={(o) => !o && setConfirm(null)}
        title={`Delete ${g.name}?`}
        description="The agent and its history are removed from FlowGate. A running agent with a registration token can enrol again as a new agent."
        confirmLabel="Delete agent"
        danger
        onConfirm={async () => {
          await remove.mutateAsync(g.id);
          navigate(`/orgs/${orgId}/agents`, { replace: true });
        }}
      />
    </div>
  );
}
