import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import { CopyButton } from "@/components/CopyButton";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { YamlView } from "@/features/agents/components/YamlView";
import { deploymentQueries } from "@/features/deployments/api/deployments";
import { DeployDialog } from "@/features/deployments/components/DeployDialog";
import { DeploymentTable } from "@/features/deployments/components/DeploymentTable";
import { ApiError } from "@/lib/api-client";
import { usePollInterval } from "@/lib/live-state";
import { configQueries, type VersionSummary } from "../api/configs";

function VersionBody({ orgId, configId, version }: { orgId: string; configId: string; version: number }) {
  const body = useQuery(configQueries.version(orgId, configId, version));
  if (body.isPending) return <Skeleton rows={6} columns={1} />;
  if (body.isError) return <ErrorState error={body.error} onRetry={() => void body.refetch()} />;
  return (
    <>
      <div className="card__header">
        <h2 className="card__title">Version {version}</h2>
        <span className="mono muted" title={body.data.config_hash}>
          sha256 {body.data.config_hash.slice(0, 12)}
        </span>
        <span className="card__spacer" />
        <CopyButton text={body.data.config_yaml} label="Copy" />
      </div>
      <YamlView text={body.data.config_yaml} label={`Version ${version}`} />
    </>
  );
}

export function ConfigDetailRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "", configId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const poll = usePollInterval();
  const template = useQuery(configQueries.detail(orgId, configId));
  // Newest page first; older pages by `before` (a stack, like the other pagers).
  const [befores, setBefores] = useState<number[]>([]);
  const before = befores[befores.length - 1];
  const newest = useQuery({ ...configQueries.versions(orgId, configId), enabled: before === undefined });
  const older = useQuery({ ...configQueries.versionsBefore(orgId, configId, before ?? 0), enabled: before !== undefined });
  const versions = before === undefined ? newest : older;
  const deployments = useQuery({ ...deploymentQueries.list(orgId, { config_id: configId }, null, 20), refetchInterval: poll });
  const [deploying, setDeploying] = useState<VersionSummary | null>(null);
  const items = versions.data?.items ?? [];
  const latest = template.data?.latest_version ?? null;
  const shown = Number(params.get("version")) || latest;
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);
  const diffFrom = from ?? items[1]?.version ?? latest;
  const diffTo = to ?? latest;

  const back = (
    <Link className="crumb" to={`/orgs/${orgId}/configs`}>
      ← Configurations
    </Link>
  );
  if (template.isPending) {
    return (
      <div className="page">
        {back}
        <Skeleton rows={8} columns={4} />
      </div>
    );
  }
  if (template.isError) {
    return (
      <div className="page">
        {back}
        {template.error instanceof ApiError && template.error.status === 404 ? (
          <EmptyState title="This template does not exist">It may have been deleted.</EmptyState>
        ) : (
          <ErrorState error={template.error} onRetry={() => void template.refetch()} />
        )}
      </div>
    );
  }
  const t = template.data;
  const newVersion = (
    <Link className="btn btn--primary" to={`/orgs/${orgId}/configs/${configId}/new`}>
      New version
    </Link>
  );

  return (
    <div className="page">
      {back}
      <div className="page-header">
        <div>
          <h1 className="page-header__title">{t.name}</h1>
          <p className="page-header__subtitle">{t.description ?? `Template · ${latest === null ? "no versions yet" : `latest v${latest}`}`}</p>
        </div>
        {canOperate && <div className="page-header__actions">{newVersion}</div>}
      </div>

      <section className="card card--flush" aria-labelledby="versions-title">
        <header className="card__header card__header--padded">
          <h2 id="versions-title" className="card__title">
            Versions
          </h2>
          <span className="card__spacer" />
          {items.length > 1 && (
            <form
              className="inline-form"
              aria-label="Compare versions"
              onSubmit={(e) => {
                e.preventDefault();
                navigate(`/orgs/${orgId}/configs/${configId}/diff?from=${diffFrom}&to=${diffTo}`);
              }}
            >
              <label className="field field--inline field--row">
                <span>Compare</span>
                <select aria-label="From version" value={diffFrom ?? ""} onChange={(e) => setFrom(Number(e.target.value))}>
                  {items.map((v) => (
                    <option key={v.version} value={v.version}>
                      v{v.version}
                    </option>
                  ))}
                </select>
              </label>
              <label className="field field--inline field--row">
                <span>with</span>
                <select aria-label="To version" value={diffTo ?? ""} onChange={(e) => setTo(Number(e.target.value))}>
                  {items.map((v) => (
                    <option key={v.version} value={v.version}>
                      v{v.version}
                    </option>
                  ))}
                </select>
              </label>
              <button type="submit" className="btn btn--small">
                Compare
              </button>
            </form>
          )}
        </header>
        {versions.isPending ? (
          <Skeleton rows={4} columns={5} />
        ) : versions.isError ? (
          <ErrorState error={versions.error} onRetry={() => void versions.refetch()} />
        ) : items.length === 0 ? (
          <EmptyState title="No versions yet" action={canOperate ? newVersion : undefined}>
            {canOperate
              ? "Write the first version in the editor: it is checked as you type, and errors are marked at their line."
              : "An operator adds versions to this template."}
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Versions">
              <thead>
                <tr>
                  <th>Version</th>
                  <th>Message</th>
                  <th>Hash</th>
                  <th>Created</th>
                  <th className="table__actions">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {items.map((v) => (
                  <tr key={v.version} aria-selected={v.version === shown}>
                    <td className="table__name">
                      <button
                        type="button"
                        className="btn btn--link"
                        aria-pressed={v.version === shown}
                        onClick={() => setParams({ version: String(v.version) }, { replace: true })}
                      >
                        v{v.version}
                      </button>
                      {v.version === latest && <span className="badge badge--info">latest</span>}
                    </td>
                    <td>{v.message ?? <span className="muted">—</span>}</td>
                    <td className="mono muted" title={v.config_hash}>
                      {v.config_hash.slice(0, 12)}
                    </td>
                    <td>
                      <RelativeTime iso={v.created_at} />
                    </td>
                    <td className="table__actions">
                      {v.version > 1 && (
                        <Link className="btn btn--small btn--ghost" to={`/orgs/${orgId}/configs/${configId}/diff?from=${v.version - 1}&to=${v.version}`}>
                          Diff
                        </Link>
                      )}
                      {canOperate && (
                        <>
                          <Link className="btn btn--small btn--ghost" to={`/orgs/${orgId}/configs/${configId}/new?from=${v.version}`}>
                            Edit as new
                          </Link>
                          <button type="button" className="btn btn--small" onClick={() => setDeploying(v)}>
                            Deploy v{v.version}
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {(befores.length > 0 || versions.data?.next_before) && (
        <nav className="pager pager--top" aria-label="Version pages">
          <button type="button" className="btn btn--small" disabled={befores.length === 0} onClick={() => setBefores(befores.slice(0, -1))}>
            Newer versions
          </button>
          <button
            type="button"
            className="btn btn--small"
            disabled={!versions.data?.next_before}
            onClick={() => versions.data?.next_before && setBefores([...befores, versions.data.next_before])}
          >
            Older versions
          </button>
        </nav>
      )}

      {shown !== null && (
        <section className="card">
          <VersionBody orgId={orgId} configId={configId} version={shown} />
        </section>
      )}

      <section className="card card--flush" aria-labelledby="deployments-title">
        <header className="card__header card__header--padded">
          <h2 id="deployments-title" className="card__title">
            Deployments of this template
          </h2>
        </header>
        {deployments.isPending ? (
          <Skeleton rows={3} columns={6} />
        ) : deployments.isError ? (
          <ErrorState error={deployments.error} onRetry={() => void deployments.refetch()} />
        ) : deployments.data.items.length === 0 ? (
          <EmptyState title="Not deployed yet">{canOperate && latest !== null ? "Deploy a version to agents with its Deploy button." : undefined}</EmptyState>
        ) : (
          <DeploymentTable orgId={orgId} items={deployments.data.items} label="Deployments of this template" />
        )}
      </section>

      {deploying && (
        <DeployDialog
          orgId={orgId}
          open
          onOpenChange={(o) => !o && setDeploying(null)}
          config={{ id: configId, name: t.name, version: deploying.version }}
          onCreated={(d) => navigate(`/orgs/${orgId}/deployments/${d.id}`)}
        />
      )}
    </div>
  );
}
