import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { LabelChips } from "@/components/LabelChips";
import { PageHeader } from "@/components/PageHeader";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { alertQueries, type Alert, type AlertState } from "../api/alerts";
import { AlertStateBadge } from "../components/AlertBits";
import { AlertingTabs } from "../components/AlertingTabs";
import { CreateSilenceDialog } from "../components/CreateSilenceDialog";
import { selectorOf } from "../lib/rules";

/** Alerts are not announced on the event stream: the list refreshes on its own this often. */
export const ALERTS_REFRESH_MS = 10_000;

const FILTERS = [
  ["firing", "Firing"],
  ["resolved", "Resolved"],
  ["", "All"],
] as const;

function Subject({ orgId, alert }: { orgId: string; alert: Alert }) {
  if (alert.kind === "gateway_unhealthy") return <Link to={`/orgs/${orgId}/agents/${alert.subject}`}>{alert.subject_name}</Link>;
  if (alert.kind === "deployment_failed") return <Link to={`/orgs/${orgId}/deployments/${alert.subject}`}>{alert.subject_name}</Link>;
  return <span>{alert.subject_name}</span>;
}

export function AlertsRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const raw = params.get("state");
  const state = (raw === null ? "firing" : raw) as AlertState | "";
  const [pages, setPages] = useState<{ state: string; stack: (string | null)[] }>({ state, stack: [null] });
  const stack = pages.state === state ? pages.stack : [null];
  const cursor = stack[stack.length - 1] ?? null;
  const list = useQuery({ ...alertQueries.alerts(orgId, state || undefined, cursor), refetchInterval: ALERTS_REFRESH_MS });
  const rules = useQuery(alertQueries.rules(orgId));
  const [silencing, setSilencing] = useState<Alert | null>(null);
  const items = list.data?.items ?? [];
  const noRules = rules.data?.length === 0;

  return (
    <div className="page">
      <PageHeader title="Alerts" subtitle="What the alert rules found, newest first. Checked every 30 s by default." />
      <AlertingTabs orgId={orgId} />
      <div className="filters alert-filters">
        <span className="muted" aria-hidden="true">
          Show
        </span>
        <div className="segmented" role="tablist" aria-label="Alert state">
          {FILTERS.map(([value, label]) => (
            <button
              key={label}
              type="button"
              role="tab"
              aria-selected={state === value}
              className="segmented__item"
              onClick={() => setParams({ state: value }, { replace: true })}
            >
              {label}
            </button>
          ))}
        </div>
      </div>
      <section className="card card--flush" aria-busy={list.isFetching}>
        {list.isPending ? (
          <Skeleton rows={5} columns={6} />
        ) : list.isError && !list.data ? (
          <ErrorState error={list.error} onRetry={() => void list.refetch()} />
        ) : items.length === 0 ? (
          noRules ? (
            <EmptyState
              title="No alert rules yet"
              action={
                canOperate ? (
                  <Link className="btn btn--primary" to={`/orgs/${orgId}/alerts/rules`}>
                    Create a rule
                  </Link>
                ) : undefined
              }
            >
              {canOperate
                ? "Add a notification channel (a webhook), then a rule saying what to watch: silent gateways, a share of the fleet unhealthy, failed deployments, expiring tokens."
                : "Alerts appear here once an operator creates an alert rule."}
            </EmptyState>
          ) : state === "firing" ? (
            <EmptyState title="Nothing is firing">All rules are quiet. Resolved alerts are under “Resolved”.</EmptyState>
          ) : (
            <EmptyState title={state ? `No ${state} alerts` : "No alerts yet"}>Alerts appear here when a rule matches.</EmptyState>
          )
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Alerts">
              <thead>
                <tr>
                  <th>State</th>
                  <th>Alert</th>
                  <th>Rule</th>
                  <th>Subject</th>
                  <th>Labels</th>
                  <th>Started</th>
                  <th>Resolved</th>
                  {canOperate && (
                    <th className="table__actions">
                      <span className="sr-only">Actions</span>
                    </th>
                  )}
                </tr>
              </thead>
              <tbody>
                {items.map((a) => (
                  <tr key={a.id}>
                    <td>
                      <AlertStateBadge alert={a} />
                    </td>
                    <td className="alert-summary">{a.summary}</td>
                    <td>{a.rule_name}</td>
                    <td className="table__name">
                      <Subject orgId={orgId} alert={a} />
                    </td>
                    <td>
                      <LabelChips labels={a.labels} max={3} />
                    </td>
                    <td>
                      <RelativeTime iso={a.started_at} />
                    </td>
                    <td>{a.resolved_at ? <RelativeTime iso={a.resolved_at} /> : <span className="muted">—</span>}</td>
                    {canOperate && (
                      <td className="table__actions">
                        {a.state === "firing" && !a.silenced && (
                          <button type="button" className="btn btn--small" onClick={() => setSilencing(a)}>
                            Silence
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {(stack.length > 1 || list.data?.next_cursor) && (
          <nav className="pager" aria-label="Pages">
            <button type="button" className="btn btn--small" disabled={stack.length <= 1} onClick={() => setPages({ state, stack: stack.slice(0, -1) })}>
              Previous
            </button>
            <button
              type="button"
              className="btn btn--small"
              disabled={!list.data?.next_cursor || list.isPlaceholderData}
              onClick={() => list.data?.next_cursor && setPages({ state, stack: [...stack, list.data.next_cursor] })}
            >
              Next
            </button>
          </nav>
        )}
      </section>
      {canOperate && (
        <CreateSilenceDialog
          orgId={orgId}
          open={silencing !== null}
          onOpenChange={(o) => !o && setSilencing(null)}
          ruleId={silencing?.rule_id ?? ""}
          selector={silencing ? selectorOf(silencing.labels) : ""}
        />
      )}
    </div>
  );
}
