import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { PageHeader } from "@/components/PageHeader";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { configQueries } from "../api/configs";
import { CreateTemplateDialog } from "../components/CreateTemplateDialog";

export function ConfigsRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "" } = useParams();
  const navigate = useNavigate();
  const list = useQuery(configQueries.list(orgId));
  const [creating, setCreating] = useState(false);
  // Each gateway's own template (the per-gateway push shortcut) is listed last.
  const rows = [...(list.data ?? [])].sort(
    (a, b) => Number(a.name.startsWith("gateway:")) - Number(b.name.startsWith("gateway:")) || a.name.localeCompare(b.name),
  );
  const createButton = (label: string) => (
    <button type="button" className="btn btn--primary" onClick={() => setCreating(true)}>
      {label}
    </button>
  );
  return (
    <div className="page">
      <PageHeader
        title="Configurations"
        subtitle="Collector configuration templates, their versions, and what is deployed where."
        actions={canOperate && createButton("Create template")}
      />
      <section className="card card--flush">
        {list.isPending ? (
          <Skeleton rows={5} columns={4} />
        ) : list.isError ? (
          <ErrorState error={list.error} onRetry={() => void list.refetch()} />
        ) : rows.length === 0 ? (
          <EmptyState title="No configuration templates yet" action={canOperate ? createButton("Create a template") : undefined}>
            {canOperate
              ? "Create a template, write its first version in the editor (it is validated as you type), then deploy it to agents."
              : "Templates appear here once an operator creates one."}
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Configuration templates">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Description</th>
                  <th className="num">Latest version</th>
                  <th>Updated</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((t) => (
                  <tr key={t.id}>
                    <td className="table__name">
                      <Link to={`/orgs/${orgId}/configs/${t.id}`}>{t.name}</Link>
                    </td>
                    <td className="muted table__truncate">{t.description ?? "—"}</td>
                    <td className="num">{t.latest_version === null ? <span className="muted">none yet</span> : `v${t.latest_version}`}</td>
                    <td>
                      <RelativeTime iso={t.updated_at} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <CreateTemplateDialog orgId={orgId} open={creating} onOpenChange={setCreating} onCreated={(t) => navigate(`/orgs/${orgId}/configs/${t.id}`)} />
    </div>
  );
}
