import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { PageHeader } from "@/components/PageHeader";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { usePollInterval } from "@/lib/live-state";
import { deploymentQueries } from "../api/deployments";
import { DeploymentTable } from "../components/DeploymentTable";
import { stateLabel } from "../lib/deploy";

const STATES = ["pending", "rolling_out", "paused", "completed", "failed", "cancelled", "rolled_back"] as const;

export function DeploymentsRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const state = params.get("state") ?? "";
  const [pages, setPages] = useState<{ state: string; stack: (string | null)[] }>({ state, stack: [null] });
  const stack = pages.state === state ? pages.stack : [null];
  const cursor = stack[stack.length - 1] ?? null;
  const poll = usePollInterval();
  const list = useQuery({ ...deploymentQueries.list(orgId, { state: state || undefined }, cursor), refetchInterval: poll });
  const items = list.data?.items ?? [];

  return (
    <div className="page">
      <PageHeader
        title="Deployments"
        subtitle="Every change of what agents run, newest first."
        actions={
          canOperate && (
            <Link className="btn" to={`/orgs/${orgId}/configs`}>
              Deploy from a template
            </Link>
          )
        }
      />
      <div className="filters">
        <label className="field field--inline field--row">
          <span>State</span>
          <select
            value={state}
            onChange={(e) => setParams(e.target.value ? { state: e.target.value } : {}, { replace: true })}
          >
            <option value="">All</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {stateLabel(s)}
              </option>
            ))}
          </select>
        </label>
      </div>
      <section className="card card--flush" aria-busy={list.isFetching}>
        {list.isPending ? (
          <Skeleton rows={6} columns={6} />
        ) : list.isError && !list.data ? (
          <ErrorState error={list.error} onRetry={() => void list.refetch()} />
        ) : items.length === 0 ? (
          state ? (
            <EmptyState title={`No ${stateLabel(state)} deployments`} />
          ) : (
            <EmptyState
              title="No deployments yet"
              action={
                canOperate ? (
                  <Link className="btn btn--primary" to={`/orgs/${orgId}/configs`}>
                    Go to configurations
                  </Link>
                ) : undefined
              }
            >
              {canOperate
                ? "Open a configuration template and deploy one of its versions to agents."
                : "Deployments appear here once an operator deploys a configuration."}
            </EmptyState>
          )
        ) : (
          <DeploymentTable orgId={orgId} items={items} label="Deployments" />
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
    </div>
  );
}
