import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useParams } from "react-router";
import { ConfirmDialog } from "@/components/Dialog";
import { PageHeader } from "@/components/PageHeader";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { useNow } from "@/lib/clock";
import { alertQueries, useDeleteSilence, type Silence } from "../api/alerts";
import { AlertingTabs } from "../components/AlertingTabs";
import { CreateSilenceDialog } from "../components/CreateSilenceDialog";
import { describeSilence } from "../lib/rules";

function SilenceState({ silence }: { silence: Silence }) {
  const now = useNow();
  if (silence.active && Date.parse(silence.ends_at) > now) return <span className="badge badge--info">in force</span>;
  return <span className="badge badge--muted">{Date.parse(silence.starts_at) > now ? "scheduled" : "ended"}</span>;
}

/** Only a silence that has not ended yet can be ended. */
function EndButton({ silence, onEnd }: { silence: Silence; onEnd: () => void }) {
  if (Date.parse(silence.ends_at) <= useNow()) return null;
  return (
    <button type="button" className="btn btn--small btn--danger-outline" onClick={onEnd}>
      End silence
    </button>
  );
}

export function SilencesRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "" } = useParams();
  const silences = useQuery({ ...alertQueries.silences(orgId), refetchInterval: 30_000 });
  const rules = useQuery(alertQueries.rules(orgId));
  const remove = useDeleteSilence(orgId);
  const [creating, setCreating] = useState(false);
  const [ending, setEnding] = useState<Silence | null>(null);
  const ruleName = (id: string) => rules.data?.find((r) => r.id === id)?.name;
  const createButton = (label: string) => (
    <button type="button" className="btn btn--primary" onClick={() => setCreating(true)}>
      {label}
    </button>
  );

  return (
    <div className="page">
      <PageHeader
        title="Alerts"
        subtitle="Silences hold back the notifications of matching alerts for a while (maintenance, a known outage)."
        actions={canOperate && createButton("Create silence")}
      />
      <AlertingTabs orgId={orgId} />
      <section className="card card--flush">
        {silences.isPending ? (
          <Skeleton rows={3} columns={5} />
        ) : silences.isError ? (
          <ErrorState error={silences.error} onRetry={() => void silences.refetch()} />
        ) : silences.data.length === 0 ? (
          <EmptyState title="No silences" action={canOperate ? createButton("Create a silence") : undefined}>
            {canOperate
              ? "Before planned work, silence a rule or the alerts of some labels (env=staging) for a few hours; alerts are still listed, nobody is paged."
              : "Operators create silences during maintenance; alerts are still listed while silenced."}
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Silences">
              <thead>
                <tr>
                  <th>Matches</th>
                  <th>Comment</th>
                  <th>State</th>
                  <th>From</th>
                  <th>Until</th>
                  {canOperate && (
                    <th className="table__actions">
                      <span className="sr-only">Actions</span>
                    </th>
                  )}
                </tr>
              </thead>
              <tbody>
                {silences.data.map((s) => (
                  <tr key={s.id} className={s.active ? undefined : "is-muted"}>
                    <td className="table__name">{describeSilence(s, ruleName)}</td>
                    <td>{s.comment ?? <span className="muted">—</span>}</td>
                    <td>
                      <SilenceState silence={s} />
                    </td>
                    <td>
                      <RelativeTime iso={s.starts_at} />
                    </td>
                    <td>
                      <RelativeTime iso={s.ends_at} />
                    </td>
                    {canOperate && (
                      <td className="table__actions">
                        <EndButton silence={s} onEnd={() => setEnding(s)} />
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {canOperate && <CreateSilenceDialog orgId={orgId} open={creating} onOpenChange={setCreating} />}
      <ConfirmDialog
        open={ending !== null}
        onOpenChange={(o) => !o && setEnding(null)}
        title="End this silence?"
        description="Alerts it held back that still fire are notified on the next evaluation."
        confirmLabel="End silence"
        danger
        onConfirm={() => (ending ? remove.mutateAsync(ending.id) : Promise.resolve())}
      />
    </div>
  );
}
