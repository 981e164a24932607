import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useParams } from "react-router";
import { ConfirmDialog } from "@/components/Dialog";
import { PageHeader } from "@/components/PageHeader";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { errorMessage } from "@/lib/api-client";
import { alertQueries, useDeleteChannel, useTestChannel, type Channel, type CreatedChannel } from "../api/alerts";
import { AlertingTabs } from "../components/AlertingTabs";
import { ChannelCreatedDialog, CreateChannelDialog, DeliveriesDialog } from "../components/ChannelDialogs";
import { testOutcome } from "../lib/rules";

type TestState = { pending: true } | { pending: false; ok: boolean; text: string };

export function ChannelsRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "" } = useParams();
  const channels = useQuery(alertQueries.channels(orgId));
  const test = useTestChannel(orgId);
  const remove = useDeleteChannel(orgId);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedChannel | null>(null);
  const [deleting, setDeleting] = useState<Channel | null>(null);
  const [showing, setShowing] = useState<Channel | null>(null);
  const [tests, setTests] = useState<Record<string, TestState>>({});

  const sendTest = (id: string) => {
    setTests((t) => ({ ...t, [id]: { pending: true } }));
    test.mutate(id, {
      onSuccess: (r) => setTests((t) => ({ ...t, [id]: { pending: false, ok: r.delivered, text: testOutcome(r) } })),
      onError: (e) => setTests((t) => ({ ...t, [id]: { pending: false, ok: false, text: errorMessage(e) } })),
    });
  };
  const addButton = (label: string) => (
    <button type="button" className="btn btn--primary" onClick={() => setCreating(true)}>
      {label}
    </button>
  );

  return (
    <div className="page">
      <PageHeader title="Alerts" subtitle="Notification channels: signed webhooks the rules send their alerts to." actions={canOperate && addButton("Add webhook")} />
      <AlertingTabs orgId={orgId} />
      <section className="card card--flush">
        {channels.isPending ? (
          <Skeleton rows={3} columns={4} />
        ) : channels.isError ? (
          <ErrorState error={channels.error} onRetry={() => void channels.refetch()} />
        ) : channels.data.length === 0 ? (
          <EmptyState title="No notification channels yet" action={canOperate ? addButton("Add a webhook") : undefined}>
            {canOperate
              ? "Add the URL of a webhook receiver (chat, paging, your own service), send it a test, then name it in a rule."
              : "Operators add webhooks that alerts are sent to."}
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Notification channels">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>URL</th>
                  <th>Added</th>
                  <th className="table__actions">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {channels.data.map((c) => {
                  const result = tests[c.id];
                  return (
                    <tr key={c.id}>
                      <td className="table__name">{c.name}</td>
                      <td className="mono table__truncate" title={c.url}>
                        {c.url}
                      </td>
                      <td>
                        <RelativeTime iso={c.created_at} />
                      </td>
                      <td className="table__actions">
                        {result && (
                          <span
                            className={`test-result ${result.pending ? "muted" : result.ok ? "text-good" : "text-bad"}`}
                            role="status"
                            aria-label={`Test of ${c.name}`}
                          >
                            {result.pending ? "Sending…" : result.text}
                          </span>
                        )}
                        {canOperate && (
                          <>
                            <button type="button" className="btn btn--small" disabled={result?.pending} onClick={() => sendTest(c.id)}>
                              Send test
                            </button>{" "}
                          </>
                        )}
                        <button type="button" className="btn btn--small" onClick={() => setShowing(c)}>
                          Deliveries
                        </button>
                        {canOperate && (
                          <>
                            {" "}
                            <button type="button" className="btn btn--small btn--danger-outline" onClick={() => setDeleting(c)}>
                              Delete
                            </button>
                          </>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {canOperate && <CreateChannelDialog orgId={orgId} open={creating} onOpenChange={setCreating} onCreated={setCreated} />}
      <ChannelCreatedDialog channel={created} onClose={() => setCreated(null)} />
      <DeliveriesDialog orgId={orgId} channel={showing} onClose={() => setShowing(null)} />
      <ConfirmDialog
        open={deleting !== null}
        onOpenChange={(o) => !o && setDeleting(null)}
        title={`Delete “${deleting?.name ?? ""}”?`}
        description="It is removed from every rule, and its queued deliveries are dropped."
        confirmLabel="Delete channel"
        danger
        onConfirm={() => (deleting ? remove.mutateAsync(deleting.id) : Promise.resolve())}
      />
    </div>
  );
}
