import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useParams } from "react-router";
import { ConfirmDialog } from "@/components/Dialog";
import { PageHeader } from "@/components/PageHeader";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { useNow } from "@/lib/clock";
import { tokenQueries, useRevokeToken, type CreatedToken, type RegistrationToken } from "../api/tokens";
import { CreateTokenDialog } from "../components/CreateTokenDialog";
import { TokenCreatedDialog } from "../components/TokenCreatedDialog";
import { tokenState, usesText } from "../lib/token-state";

const TONE = { active: "good", expired: "muted", "used up": "muted", revoked: "bad" } as const;

function StateBadge({ token }: { token: RegistrationToken }) {
  const state = tokenState(token, useNow());
  return <span className={`badge badge--${TONE[state]}`}>{state}</span>;
}

export function TokensRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "" } = useParams();
  const tokens = useQuery({ ...tokenQueries.list(orgId), enabled: canOperate });
  const revoke = useRevokeToken(orgId);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [revoking, setRevoking] = useState<RegistrationToken | null>(null);

  if (!canOperate) {
    return (
      <div className="page">
        <PageHeader title="Registration tokens" />
        <EmptyState title="Operators manage registration tokens">
          Your role in this organisation is viewer. Ask an admin for the operator role to enrol agents.
        </EmptyState>
      </div>
    );
  }

  const rows = [...(tokens.data ?? [])].sort((a, b) => b.created_at.localeCompare(a.created_at));
  return (
    <div className="page">
      <PageHeader
        title="Registration tokens"
        subtitle="Agents enrol with a registration token and then get their own OpAMP credential."
        actions={
          <button type="button" className="btn btn--primary" onClick={() => setCreating(true)}>
            Create token
          </button>
        }
      />
      <section className="card card--flush">
        {tokens.isPending ? (
          <Skeleton rows={4} columns={6} />
        ) : tokens.isError ? (
          <ErrorState error={tokens.error} onRetry={() => void tokens.refetch()} />
        ) : rows.length === 0 ? (
          <EmptyState
            title="No registration tokens yet"
            action={
              <button type="button" className="btn btn--primary" onClick={() => setCreating(true)}>
                Create a token
              </button>
            }
          >
            Create one, then start a gateway or collector with it.
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Registration tokens">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>State</th>
                  <th>Uses</th>
                  <th>Expires</th>
                  <th>Last used</th>
                  <th>Created</th>
                  <th className="table__actions">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((t) => (
                  <tr key={t.id}>
                    <td className="table__name">{t.name}</td>
                    <td>
                      <StateBadge token={t} />
                    </td>
                    <td className="mono">{usesText(t)}</td>
                    <td>
                      <RelativeTime iso={t.expires_at} />
                    </td>
                    <td>
                      <RelativeTime iso={t.last_used_at} />
                    </td>
                    <td>
                      <RelativeTime iso={t.created_at} />
                    </td>
                    <td className="table__actions">
                      {!t.revoked_at && t.is_active && (
                        <button type="button" className="btn btn--small btn--danger-outline" onClick={() => setRevoking(t)}>
                          Revoke
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <CreateTokenDialog orgId={orgId} open={creating} onOpenChange={setCreating} onCreated={setCreated} />
      <TokenCreatedDialog token={created} onClose={() => setCreated(null)} />
      <ConfirmDialog
        open={revoking !== null}
        onOpenChange={(o) => !o && setRevoking(null)}
        title={`Revoke “${revoking?.name ?? ""}”?`}
        description="No new agent can enrol with it. Agents that already enrolled keep working."
        confirmLabel="Revoke token"
        danger
        onConfirm={() => (revoking ? revoke.mutateAsync(revoking.id) : Promise.resolve())}
      />
    </div>
  );
}
