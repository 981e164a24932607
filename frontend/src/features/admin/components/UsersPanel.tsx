import { useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { ConfirmDialog, Dialog } from "@/components/Dialog";
import { RelativeTime } from "@/components/RelativeTime";
import { ErrorState, Skeleton } from "@/components/States";
import { errorMessage } from "@/lib/api-client";
import { adminQueries, ROLES, useChangeRole, useInviteUser, useRemoveUser, type Member, type Role } from "../api/people";

function InviteDialog({ orgId, open, onOpenChange }: { orgId: string; open: boolean; onOpenChange: (o: boolean) => void }) {
  const invite = useInviteUser(orgId);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    invite.mutate(
      { email: email.trim(), password: password || null, role },
      {
        onSuccess: () => {
          setEmail("");
          setPassword("");
          invite.reset();
          onOpenChange(false);
        },
      },
    );
  };
  return (
    <Dialog
      open={open}
      onOpenChange={(o) => {
        if (!o) invite.reset();
        onOpenChange(o);
      }}
      title="Invite a user"
      description="Give them the email and password yourself. Leave the password empty to add someone who already has a FlowGate account."
    >
      <form className="form" onSubmit={submit}>
        <label className="field">
          <span>Email</span>
          <input type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label className="field">
          <span>Initial password (at least 8 characters)</span>
          <input type="password" minLength={8} autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />
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
        {invite.isError && (
          <p className="notice notice--error" role="alert">
            {errorMessage(invite.error)}
          </p>
        )}
        <div className="dialog__footer">
          <button type="button" className="btn" onClick={() => onOpenChange(false)}>
            Cancel
          </button>
          <button type="submit" className="btn btn--primary" disabled={invite.isPending}>
            Invite
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function UsersPanel({ orgId, currentUserId }: { orgId: string; currentUserId: string | null }) {
  const users = useQuery(adminQueries.users(orgId));
  const changeRole = useChangeRole(orgId);
  const remove = useRemoveUser(orgId);
  const [inviting, setInviting] = useState(false);
  const [removing, setRemoving] = useState<Member | null>(null);
  const [rowError, setRowError] = useState<string | null>(null);

  return (
    <section className="card card--flush" aria-labelledby="users-title">
      <header className="card__header card__header--padded">
        <h2 id="users-title" className="card__title">
          Users and roles
        </h2>
        <span className="muted">viewer reads · operator also manages agents and tokens · admin also people and keys</span>
        <span className="card__spacer" />
        <button type="button" className="btn btn--primary btn--small" onClick={() => setInviting(true)}>
          Invite user
        </button>
      </header>
      {rowError && (
        <p className="notice notice--error" role="alert">
          {rowError}
        </p>
      )}
      {users.isPending ? (
        <Skeleton rows={3} columns={4} />
      ) : users.isError ? (
        <ErrorState error={users.error} onRetry={() => void users.refetch()} />
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="Users">
            <thead>
              <tr>
                <th>Email</th>
                <th>Role</th>
                <th>Joined</th>
                <th className="table__actions">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data.map((u) => (
                <tr key={u.id}>
                  <td className="table__name">
                    {u.email}
                    {u.id === currentUserId && <span className="badge badge--muted">you</span>}
                    {!u.is_active && <span className="badge badge--bad">disabled</span>}
                  </td>
                  <td>
                    <label>
                      <span className="sr-only">Role of {u.email}</span>
                      <select
                        value={u.role}
                        disabled={changeRole.isPending}
                        onChange={(e) =>
                          changeRole.mutate(
                            { id: u.id, role: e.target.value as Role },
                            { onSuccess: () => setRowError(null), onError: (err) => setRowError(errorMessage(err)) },
                          )
                        }
                      >
                        {ROLES.map((r) => (
                          <option key={r} value={r}>
                            {r}
                          </option>
                        ))}
                      </select>
                    </label>
                  </td>
                  <td>
                    <RelativeTime iso={u.created_at} />
                  </td>
                  <td className="table__actions">
                    <button type="button" className="btn btn--small btn--danger-outline" onClick={() => setRemoving(u)}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <InviteDialog orgId={orgId} open={inviting} onOpenChange={setInviting} />
      <ConfirmDialog
        open={removing !== null}
        onOpenChange={(o) => !o && setRemoving(null)}
        title={`Remove ${removing?.email ?? ""}?`}
        description="They lose access to this organisation at once. Their account stays for other organisations."
        confirmLabel="Remove user"
        danger
        onConfirm={() => (removing ? remove.mutateAsync(removing.id) : Promise.resolve())}
      />
    </section>
  );
}
