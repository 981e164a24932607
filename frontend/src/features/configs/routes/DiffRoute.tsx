import { useQuery } from "@tanstack/react-query";
import { Link, useParams, useSearchParams } from "react-router";
import { ErrorState, Skeleton } from "@/components/States";
import { configQueries } from "../api/configs";
import { SideBySideDiff } from "../components/SideBySideDiff";

/** Two versions of a template side by side (`?from=A&to=B`, default: the newest two). */
export function DiffRoute() {
  const { orgId = "", configId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const template = useQuery(configQueries.detail(orgId, configId));
  const versions = useQuery(configQueries.versions(orgId, configId));
  const items = versions.data?.items ?? [];
  const from = Number(params.get("from")) || items[1]?.version || items[0]?.version || 0;
  const to = Number(params.get("to")) || items[0]?.version || 0;
  const left = useQuery({ ...configQueries.version(orgId, configId, from), enabled: from > 0 });
  const right = useQuery({ ...configQueries.version(orgId, configId, to), enabled: to > 0 });

  const pick = (key: "from" | "to", value: string) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        next.set("from", String(from));
        next.set("to", String(to));
        next.set(key, value);
        return next;
      },
      { replace: true },
    );
  const error = template.error ?? versions.error ?? left.error ?? right.error;
  return (
    <div className="page page--wide">
      <Link className="crumb" to={`/orgs/${orgId}/configs/${configId}`}>
        ← {template.data?.name ?? "Template"}
      </Link>
      <div className="page-header">
        <div>
          <h1 className="page-header__title">
            {template.data?.name ?? "Template"}: v{from} → v{to}
          </h1>
          <p className="page-header__subtitle">Removed lines on the left, added lines on the right.</p>
        </div>
        <div className="page-header__actions">
          <label className="field field--inline field--row">
            <span>From</span>
            <select aria-label="From version" value={from} onChange={(e) => pick("from", e.target.value)}>
              {items.map((v) => (
                <option key={v.version} value={v.version}>
                  v{v.version}
                </option>
              ))}
            </select>
          </label>
          <label className="field field--inline field--row">
            <span>To</span>
            <select aria-label="To version" value={to} onChange={(e) => pick("to", e.target.value)}>
              {items.map((v) => (
                <option key={v.version} value={v.version}>
                  v{v.version}
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>
      <section className="card">
        {error ? (
          <ErrorState error={error} />
        ) : !left.data || !right.data ? (
          <Skeleton rows={10} columns={2} />
        ) : (
          <SideBySideDiff before={left.data.config_yaml} after={right.data.config_yaml} fromLabel={`v${from}`} toLabel={`v${to}`} />
        )}
      </section>
    </div>
  );
}
