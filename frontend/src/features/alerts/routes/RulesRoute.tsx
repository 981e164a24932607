import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams } from "react-router";
import { ConfirmDialog } from "@/components/Dialog";
import { PageHeader } from "@/components/PageHeader";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { errorMessage } from "@/lib/api-client";
import { alertQueries, useDeleteRule, useUpdateRule, type AlertRule } from "../api/alerts";
import { EnabledBadge } from "../components/AlertBits";
import { AlertingTabs } from "../components/AlertingTabs";
import { CreateRuleDialog } from "../components/CreateRuleDialog";
import { describeCondition } from "../lib/rules";

export function RulesRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "" } = useParams();
  const rules = useQuery(alertQueries.rules(orgId));
  const channels = useQuery(alertQueries.channels(orgId));
  const update = useUpdateRule(orgId);
  const remove = useDeleteRule(orgId);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<AlertRule | null>(null);
  const channelName = (id: string) => channels.data?.find((c) => c.id === id)?.name ?? "…";
  const createButton = (label: string) => (
    <button type="button" className="btn btn--primary" onClick={() => setCreating(true)}>
      {label}
    </button>
  );

  return (
    <div className="page">
      <PageHeader title="Alerts" subtitle="Rules say what to watch and whom to tell." actions={canOperate && createButton("Create rule")} />
      <AlertingTabs orgId={orgId} />
      {update.isError && (
        <p className="notice notice--error" role="alert">
          {errorMessage(update.error)}
        </p>
      )}
      <section className="card card--flush">
        {rules.isPending ? (
          <Skeleton rows={4} columns={5} />
        ) : rules.isError ? (
          <ErrorState error={rules.error} onRetry={() => void rules.refetch()} />
        ) : rules.data.length === 0 ? (
          <EmptyState title="No alert rules yet" action={canOperate ? createButton("Create a rule") : undefined}>
            {canOperate ? (
              <>
                A rule watches for silent gateways, a share of the fleet unhealthy, failed deployments or expiring tokens.{" "}
                {channels.data?.length === 0 && (
                  <>
                    To be notified, first <Link to={`/orgs/${orgId}/alerts/channels`}>add a notification channel</Link>.
                  </>
                )}
              </>
            ) : (
              "Operators create alert rules; ask one if you want to be told when gateways go silent."
            )}
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Alert rules">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Fires when</th>
                  <th>Gateways</th>
                  <th>Notifies</th>
                  <th>State</th>
                  <th>Updated</th>
                  {canOperate && (
                    <th className="table__actions">
                      <span className="sr-only">Actions</span>
                    </th>
                  )}
                </tr>
              </thead>
              <tbody>
                {rules.data.map((r) => (
                  <tr key={r.id} className={r.enabled ? undefined : "is-muted"}>
                    <td className="table__name">{r.name}</td>
                    <td>{describeCondition(r)}</td>
                    <td className="mono">{r.selector ?? (r.kind === "gateway_unhealthy" || r.kind === "fleet_unhealthy_percent" ? "all" : "—")}</td>
                    <td>{r.channel_ids.length === 0 ? <span className="muted">nobody (listed only)</span> : r.channel_ids.map(channelName).join(", ")}</td>
                    <td>
                      <EnabledBadge enabled={r.enabled} />
                    </td>
                    <td>
                      <RelativeTime iso={r.updated_at} />
                    </td>
                    {canOperate && (
                      <td className="table__actions">
                        <button
                          type="button"
                          className="btn btn--small"
                          disabled={update.isPending}
                          onClick={() => update.mutate({ id: r.id, body: { enabled: !r.enabled } })}
                        >
                          {r.enabled ? "Disable" : "Enable"}
                        </button>{" "}
                        <button type="button" className="btn btn--small btn--danger-outline" onClick={() => setDeleting(r)}>
                          Delete
                        </button>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {canOperate && <CreateRuleDialog orgId={orgId} open={creating} onOpenChange={setCreating} />}
      <ConfirmDialog
        open={deleting !== null}
        onOpenChange={(o) => !o && setDeleting(null)}
        title={`Delete “${deleting?.name ?? ""}”?`}
        description="Its alerts and silences are deleted with it. Notifications already queued are still sent."
        confirmLabel="Delete rule"
        danger
        onConfirm={() => (deleting ? remove.mutateAsync(deleting.id) : Promise.resolve())}
      />
    </div>
  );
}
