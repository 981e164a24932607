import { useQuery } from "@tanstack/react-query";
import { useCallback, useMemo, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { PageHeader } from "@/components/PageHeader";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { ApiError } from "@/lib/api-client";
import { usePollInterval } from "@/lib/live-state";
import {
  countFromSummary,
  gatewayQueries,
  PAGE_SIZE,
  PAGE_SIZES,
  selectorOnly,
  type Gateway,
  type GatewayFilters,
} from "../api/gateways";
import { AgentFilters } from "../components/AgentFilters";
import { AgentTable } from "../components/AgentTable";
import { BulkDeactivateDialog, SetLabelsDialog, type BulkTarget } from "../components/BulkDialogs";
import { BulkDeployDialog } from "../components/BulkDeploy";
import { FleetHealthChart } from "../components/FleetHealthChart";
import { HealthSummaryBar } from "../components/HealthSummaryBar";
import { addRequirement, normalizeSelector } from "../lib/selector";

const FILTER_KEYS = ["status", "health", "name", "selector"] as const;

function filtersFrom(params: URLSearchParams): GatewayFilters {
  const filters: GatewayFilters = {};
  for (const key of FILTER_KEYS) {
    const value = params.get(key);
    if (value) filters[key] = key === "selector" ? normalizeSelector(value) : value;
  }
  return filters;
}

export function AgentsRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const filters = useMemo(() => filtersFrom(params), [params]);
  const sizeParam = Number(params.get("size"));
  const pageSize = (PAGE_SIZES as readonly number[]).includes(sizeParam) ? sizeParam : PAGE_SIZE;
  const filterKey = JSON.stringify([filters, pageSize]);
  const poll = usePollInterval();

  // The cursor stack belongs to one filter: a new filter starts again on page one.
  const [pages, setPages] = useState<{ key: string; stack: (string | null)[] }>({ key: filterKey, stack: [null] });
  const stack = pages.key === filterKey ? pages.stack : [null];
  const cursor = stack[stack.length - 1] ?? null;

  const [selected, setSelected] = useState<Map<string, Gateway>>(new Map());
  const [allMatching, setAllMatching] = useState(false);
  const [labelsTarget, setLabelsTarget] = useState<BulkTarget | null>(null);
  const [deactivateTarget, setDeactivateTarget] = useState<BulkTarget | null>(null);
  const [deployTarget, setDeployTarget] = useState<BulkTarget | null>(null);

  const list = useQuery({ ...gatewayQueries.list(orgId, filters, cursor, pageSize), refetchInterval: poll });
  const summary = useQuery({ ...gatewayQueries.summary(orgId), refetchInterval: poll });
  const summaryCount = countFromSummary(summary.data, filters);
  const bySelector = selectorOnly(filters);
  const count = useQuery({
    ...gatewayQueries.count(orgId, filters.selector ?? ""),
    enabled: summaryCount === null && bySelector && !list.isError,
    refetchInterval: poll,
  });
  // Known from the summary (no filter, or one of status/health), from the count endpoint (a
  // selector alone), or when the list fits on one page; otherwise unknown (null).
  const onePage = stack.length === 1 && list.data && !list.data.next_cursor ? list.data.items.length : null;
  const matching = summaryCount ?? (bySelector ? count.data ?? null : null) ?? onePage;

  const setFilters = useCallback(
    (patch: Partial<GatewayFilters>) => {
      setParams(
        (prev) => {
          const next = new URLSearchParams(prev);
          for (const [key, value] of Object.entries(patch)) {
            if (value) next.set(key, value);
            else next.delete(key);
          }
          return next;
        },
        { replace: true },
      );
      // A new filter shows other rows: never act on rows the user can no longer see.
      setSelected(new Map());
      setAllMatching(false);
    },
    [setParams],
  );

  const pickLabel = useCallback(
    (key: string, value: string) => setFilters({ selector: addRequirement(filters.selector, key, value) }),
    [filters.selector, setFilters],
  );

  const toggle = useCallback((g: Gateway) => {
    setSelected((prev) => {
      const next = new Map(prev);
      if (next.has(g.id)) next.delete(g.id);
      else next.set(g.id, g);
      return next;
    });
  }, []);

  const items = list.data?.items ?? [];
  const togglePage = (select: boolean) => {
    setAllMatching(false);
    setSelected((prev) => {
      const next = new Map(prev);
      for (const g of items) {
        if (select) next.set(g.id, g);
        else next.delete(g.id);
      }
      return next;
    });
  };
  const clearSelection = () => {
    setSelected(new Map());
    setAllMatching(false);
  };
  const target = (): BulkTarget =>
    allMatching ? { mode: "matching", filters, pageSize, count: matching } : { mode: "selected", gateways: [...selected.values()] };
  const finishBulk = (finished: boolean) => {
    if (finished) clearSelection();
  };

  const selectorError =
    filters.selector && list.error instanceof ApiError && list.error.status >= 400 && list.error.status < 500
      ? list.error.detail
      : null;
  const hasFilters = FILTER_KEYS.some((k) => filters[k]);
  const firstRow = (stack.length - 1) * pageSize + 1;

  return (
    <div className="page">
      <PageHeader
        title="Agents"
        subtitle={
          summary.data
            ? `${summary.data.total} agent${summary.data.total === 1 ? "" : "s"} in this organisation`
            : "Gateways and collectors managed by FlowGate"
        }
        actions={
          canOperate && (
            <Link className="btn" to={`/orgs/${orgId}/tokens`}>
              Add agents
            </Link>
          )
        }
      />
      <HealthSummaryBar summary={summary.data} active={filters.health} onPick={(health) => setFilters({ health })} />
      <FleetHealthChart orgId={orgId} />
      <AgentFilters filters={filters} onChange={setFilters} selectorError={selectorError} />

      {canOperate && (selected.size > 0 || allMatching) && (
        <div className="bulkbar" role="region" aria-label="Bulk actions">
          <span className="bulkbar__count">
            {allMatching ? `All ${matching ?? ""} matching agents selected` : `${selected.size} selected`}
          </span>
          {!allMatching && list.data?.next_cursor !== undefined && (list.data.next_cursor || stack.length > 1) && (
            <button type="button" className="btn btn--link" onClick={() => setAllMatching(true)}>
              {matching !== null ? `Select all ${matching} matching` : "Select all matching"}
            </button>
          )}
          {!allMatching && !list.data?.next_cursor && stack.length === 1 && items.length > selected.size && (
            <button type="button" className="btn btn--link" onClick={() => togglePage(true)}>
              Select all {items.length}
            </button>
          )}
          <span className="bulkbar__spacer" />
          <button type="button" className="btn" onClick={() => setLabelsTarget(target())}>
            Set labels
          </button>
          <button type="button" className="btn" onClick={() => setDeployTarget(target())}>
            Deploy configuration
          </button>
          <button type="button" className="btn btn--danger-outline" onClick={() => setDeactivateTarget(target())}>
            Deactivate
          </button>
          <button type="button" className="btn btn--ghost" onClick={clearSelection}>
            Clear
          </button>
        </div>
      )}

      <section className="card card--flush" aria-label="Agent list" aria-busy={list.isFetching}>
        {list.isPending ? (
          <Skeleton rows={8} columns={8} />
        ) : list.isError && !selectorError && !list.data ? (
          <ErrorState error={list.error} onRetry={() => void list.refetch()} />
        ) : items.length === 0 ? (
          hasFilters ? (
            <EmptyState
              title="No agents match these filters"
              action={
                <button type="button" className="btn" onClick={() => setParams({}, { replace: true })}>
                  Clear filters
                </button>
              }
            />
          ) : (
            <EmptyState
              title="No agents yet"
              action={
                canOperate ? (
                  <Link className="btn btn--primary" to={`/orgs/${orgId}/tokens`}>
                    Create a registration token
                  </Link>
                ) : undefined
              }
            >
              {canOperate
                ? "Create a registration token, then start a gateway or collector with it; it shows up here within seconds."
                : "Agents appear here once an operator enrols them with a registration token."}
            </EmptyState>
          )
        ) : (
          <AgentTable
            orgId={orgId}
            gateways={items}
            selectable={canOperate}
            selected={new Set(selected.keys())}
            allMatching={allMatching}
            onToggle={toggle}
            onTogglePage={togglePage}
            onPickLabel={pickLabel}
          />
        )}
        {items.length > 0 && (
          <nav className="pager" aria-label="Pages">
            <label className="pager__size">
              <span>Rows per page</span>
              <select
                value={pageSize}
                onChange={(e) =>
                  setParams(
                    (prev) => {
                      const next = new URLSearchParams(prev);
                      next.set("size", e.target.value);
                      return next;
                    },
                    { replace: true },
                  )
                }
              >
                {PAGE_SIZES.map((n) => (
                  <option key={n} value={n}>
                    {n}
                  </option>
                ))}
              </select>
            </label>
            <span className="pager__range">
              {firstRow}–{firstRow + items.length - 1}
              {matching !== null ? ` of ${matching}` : ""}
            </span>
            <button
              type="button"
              className="btn btn--small"
              disabled={stack.length <= 1}
              onClick={() => setPages({ key: filterKey, stack: stack.slice(0, -1) })}
            >
              Previous
            </button>
            <button
              type="button"
              className="btn btn--small"
              disabled={!list.data?.next_cursor || list.isPlaceholderData}
              onClick={() => list.data?.next_cursor && setPages({ key: filterKey, stack: [...stack, list.data.next_cursor] })}
            >
              Next
            </button>
          </nav>
        )}
      </section>

      <SetLabelsDialog
        orgId={orgId}
        target={labelsTarget}
        onClose={(f) => {
          setLabelsTarget(null);
          finishBulk(f);
        }}
      />
      <BulkDeployDialog
        orgId={orgId}
        target={deployTarget}
        onClose={(f) => {
          setDeployTarget(null);
          finishBulk(f);
        }}
      />
      <BulkDeactivateDialog
        orgId={orgId}
        target={deactivateTarget}
        onClose={(f) => {
          setDeactivateTarget(null);
          finishBulk(f);
        }}
      />
    </div>
  );
}
