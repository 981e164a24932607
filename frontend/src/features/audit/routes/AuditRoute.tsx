import { useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useParams, useSearchParams } from "react-router";
import { PageHeader } from "@/components/PageHeader";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { formatTimestamp } from "@/lib/time";
import { auditQueries, type AuditFilters } from "../api/audit";
import { actorText, filtersFrom, objectFilter, objectText, RESULT_TONE } from "../lib/entry";

const FIELDS = [
  ["actor", "Who", "email, key name or id"],
  ["action", "Action", "alert_rule."],
  ["object", "Object", "gateway:<id>"],
] as const;

export function AuditRoute({ canAdmin }: { canAdmin: boolean }) {
  const { orgId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const filters = filtersFrom(params);
  const key = JSON.stringify(filters);
  const [draft, setDraft] = useState<AuditFilters>(filters);
  const [draftKey, setDraftKey] = useState(key);
  // Filters changed from outside the form (a click on an action, back/forward): show them.
  if (draftKey !== key) {
    setDraftKey(key);
    setDraft(filters);
  }
  const [pages, setPages] = useState<{ key: string; stack: (string | null)[] }>({ key, stack: [null] });
  const stack = pages.key === key ? pages.stack : [null];
  const cursor = stack[stack.length - 1] ?? null;
  const list = useQuery({ ...auditQueries.page(orgId, filters, cursor), enabled: canAdmin });
  const items = list.data?.items ?? [];
  const filtered = Object.keys(filters).length > 0;

  const apply = (next: AuditFilters) => {
    const clean = Object.fromEntries(Object.entries(next).filter(([, v]) => typeof v === "string" && v.trim() !== ""));
    setParams(clean, { replace: false });
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    apply(draft);
  };

  if (!canAdmin) {
    return (
      <div className="page">
        <PageHeader title="Audit log" />
        <EmptyState title="Admins only">Only admins of this organisation read its audit log.</EmptyState>
      </div>
    );
  }

  return (
    <div className="page">
      <PageHeader title="Audit log" subtitle="Every change made in this organisation: who, what, to which object, from where, and how it ended. Newest first." />
      <form className="filters" onSubmit={submit} aria-label="Filter the audit log">
        {FIELDS.map(([name, label, placeholder]) => (
          <label key={name} className="field field--inline field--row">
            <span>{label}</span>
            <input
              className="mono"
              maxLength={200}
              value={draft[name] ?? ""}
              placeholder={placeholder}
              onChange={(e) => setDraft((d) => ({ ...d, [name]: e.target.value }))}
            />
          </label>
        ))}
        <button type="submit" className="btn">
          Filter
        </button>
        {filtered && (
          <button type="button" className="btn btn--ghost" onClick={() => apply({})}>
            Clear
          </button>
        )}
      </form>
      <section className="card card--flush" aria-busy={list.isFetching}>
        {list.isPending ? (
          <Skeleton rows={8} columns={6} />
        ) : list.isError && !list.data ? (
          <ErrorState error={list.error} onRetry={() => void list.refetch()} />
        ) : items.length === 0 ? (
          filtered ? (
            <EmptyState
              title="No entries match"
              action={
                <button type="button" className="btn" onClick={() => apply({})}>
                  Clear the filters
                </button>
              }
            >
              An action filter matches exactly, or by prefix when it ends in “.” (alert_rule.).
            </EmptyState>
          ) : (
            <EmptyState title="Nothing recorded yet">Every change made through the UI, the API or the CLI is listed here, with who made it.</EmptyState>
          )
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Audit log">
              <thead>
                <tr>
                  <th>When</th>
                  <th>Who</th>
                  <th>Action</th>
                  <th>Object</th>
                  <th>Address</th>
                  <th>Result</th>
                </tr>
              </thead>
              <tbody>
                {items.map((e) => {
                  const actor = actorText(e);
                  const object = objectFilter(e);
                  return (
                    <tr key={e.id}>
                      <td title={formatTimestamp(e.at)}>
                        <RelativeTime iso={e.at} />
                      </td>
                      <td className="table__name">
                        {actor.name}
                        {actor.name !== actor.kind && <span className="table__sub">{actor.kind}</span>}
                      </td>
                      <td>
                        <button type="button" className="btn btn--link mono" title="Only this action" onClick={() => apply({ ...filters, action: e.action })}>
                          {e.action}
                        </button>
                      </td>
                      <td>
                        {object ? (
                          <button type="button" className="btn btn--link" title={object} onClick={() => apply({ ...filters, object })}>
                            {objectText(e)}
                          </button>
                        ) : (
                          <span className="muted">{objectText(e)}</span>
                        )}
                      </td>
                      <td className="mono">{e.address ?? "—"}</td>
                      <td>
                        <span className={`badge badge--${RESULT_TONE[e.result] ?? "muted"}`} title={`HTTP ${e.status_code}`}>
                          {e.result}
                          {e.result !== "success" && ` (${e.status_code})`}
                        </span>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        {(stack.length > 1 || list.data?.next_cursor) && (
          <nav className="pager" aria-label="Pages">
            <button type="button" className="btn btn--small" disabled={stack.length <= 1} onClick={() => setPages({ key, stack: stack.slice(0, -1) })}>
              Newer
            </button>
            <button
              type="button"
              className="btn btn--small"
              disabled={!list.data?.next_cursor || list.isPlaceholderData}
              onClick={() => list.data?.next_cursor && setPages({ key, stack: [...stack, list.data.next_cursor] })}
            >
              Older
            </button>
          </nav>
        )}
      </section>
    </div>
  );
}
