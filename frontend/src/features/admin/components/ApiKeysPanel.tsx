import { useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { CopyButton } from "@/components/CopyButton";
import { ConfirmDialog, Dialog } from "@/components/Dialog";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { errorMessage } from "@/lib/api-client";
import { adminQueries, ROLES, useCreateApiKey, useRevokeApiKey, type ApiKey, type CreatedApiKey, type Role } from "../api/people";

export function ApiKeysPanel({ orgId }: { orgId: string }) {
  const keys = useQuery(adminQueries.apiKeys(orgId));
  const create = useCreateApiKey(orgId);
  const revoke = useRevokeApiKey(orgId);
  const [creating, setCreating] = useState(false);
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [created, setCreated] = useState<CreatedApiKey | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { name: name.trim(), role },
      {
        onSuccess: (key) => {
          setName("");
          create.reset();
          setCreating(false);
          setCreated(key);
        },
      },
    );
  };

  return (
    <section className="card card--flush" aria-labelledby="keys-title">
      <header className="card__header card__header--padded">
        <h2 id="keys-title" className="card__title">
          API keys
        </h2>
        <span className="muted">for scripts and CI: Authorization: Bearer fgk_…</span>
        <span className="card__spacer" />
        <button type="button" className="btn btn--primary btn--small" onClick={() => setCreating(true)}>
          Create API key
        </button>
      </header>
      {keys.isPending ? (
        <Skeleton rows={2} columns={5} />
      ) : keys.isError ? (
        <ErrorState error={keys.error} onRetry={() => void keys.refetch()} />
      ) : keys.data.length === 0 ? (
        <EmptyState title="No API keys">Create one for a script or a CI job; give it the smallest role that works.</EmptyState>
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="API keys">
            <thead>
              <tr>
                <th>Name</th>
                <th>Key</th>
                <th>Role</th>
                <th>Last used</th>
                <th>Created</th>
                <th className="table__actions">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.data.map((k) => (
                <tr key={k.id} className={k.revoked_at ? "is-muted" : undefined}>
                  <td className="table__name">{k.name}</td>
                  <td className="mono">{k.prefix}…</td>
                  <td>{k.role}</td>
                  <td>
                    <RelativeTime iso={k.last_used_at} />
                  </td>
                  <td>
                    <RelativeTime iso={k.created_at} />
                  </td>
                  <td className="table__actions">
                    {k.revoked_at ? (
                      <span className="badge badge--bad">revoked</span>
                    ) : (
                      <button type="button" className="btn btn--small btn--danger-outline" onClick={() => setRevoking(k)}>
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

      <Dialog
        open={creating}
        onOpenChange={(o) => {
          if (!o) create.reset();
          setCreating(o);
        }}
        title="Create an API key"
      >
        <form className="form" onSubmit={submit}>
          <label className="field">
            <span>Name</span>
            <input required maxLength={100} value={name} placeholder="ci-deploy" onChange={(e) => setName(e.target.value)} />
          </label>
          <label className="field">
            <span>Role</span>
            <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
          {create.isError && (
            <p className="notice notice--error" role="alert">
              {errorMessage(create.error)}
            </p>
          )}
          <div className="dialog__footer">
            <button type="button" className="btn" onClick={() => setCreating(false)}>
              Cancel
            </button>
            <button type="submit" className="btn btn--primary" disabled={create.isPending}>
              Create key
            </button>
          </div>
        </form>
      </Dialog>
      <Dialog
        open={created !== null}
        onOpenChange={(o) => !o && setCreated(null)}
        title={`API key “${created?.name ?? ""}” created`}
        description="Copy it now: it is shown only once."
        footer={
          <button type="button" className="btn btn--primary" onClick={() => setCreated(null)}>
            I have copied it
          </button>
        }
      >
        <div className="secret">
          <code className="secret__value" aria-label="API key">
            {created?.key}
          </code>
          <CopyButton text={created?.key ?? ""} label="Copy key" className="btn--primary" />
        </div>
      </Dialog>
      <ConfirmDialog
        open={revoking !== null}
        onOpenChange={(o) => !o && setRevoking(null)}
        title={`Revoke “${revoking?.name ?? ""}”?`}
        description="Scripts using this key get 401 from now on."
        confirmLabel="Revoke key"
        danger
        onConfirm={() => (revoking ? revoke.mutateAsync(revoking.id) : Promise.resolve())}
      />
    </section>
  );
}
