import { useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { CopyButton } from "@/components/CopyButton";
import { Dialog } from "@/components/Dialog";
import { RelativeTime } from "@/components/RelativeTime";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { errorMessage } from "@/lib/api-client";
import { alertQueries, useCreateChannel, type Channel, type CreatedChannel } from "../api/alerts";
import { deliveryOutcome } from "../lib/rules";

/** Name and URL; on success hands the created channel (with its secret) to `onCreated`. */
export function CreateChannelDialog({
  orgId,
  open,
  onOpenChange,
  onCreated,
}: {
  orgId: string;
  open: boolean;
  onOpenChange: (open: boolean) => void;
  onCreated: (channel: CreatedChannel) => void;
}) {
  const create = useCreateChannel(orgId);
  const [name, setName] = useState("");
  const [url, setUrl] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { name: name.trim(), url: url.trim() },
      {
        onSuccess: (channel) => {
          setName("");
          setUrl("");
          create.reset();
          onOpenChange(false);
          onCreated(channel);
        },
      },
    );
  };
  return (
    <Dialog
      open={open}
      onOpenChange={(o) => {
        if (!o) create.reset();
        onOpenChange(o);
      }}
      title="Add a webhook"
      description="FlowGate POSTs each firing and resolved alert to this URL as JSON, signed with a secret shown once, right after you add it."
    >
      <form className="form" onSubmit={submit}>
        <label className="field">
          <span>Name</span>
          <input required maxLength={200} value={name} placeholder="on-call" onChange={(e) => setName(e.target.value)} />
        </label>
        <label className="field">
          <span>URL</span>
          <input
            required
            type="url"
            maxLength={2048}
            className="mono"
            value={url}
            placeholder="https://hooks.example.com/flowgate"
            onChange={(e) => setUrl(e.target.value)}
          />
        </label>
        {create.isError && (
          <p className="notice notice--error" role="alert">
            {errorMessage(create.error)}
          </p>
        )}
        <div className="dialog__footer">
          <button type="button" className="btn" onClick={() => onOpenChange(false)}>
            Cancel
          </button>
          <button type="submit" className="btn btn--primary" disabled={create.isPending}>
            {create.isPending ? "Adding…" : "Add webhook"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** The signing secret, shown once, as the registration token is. */
export function ChannelCreatedDialog({ channel, onClose }: { channel: CreatedChannel | null; onClose: () => void }) {
  return (
    <Dialog
      open={channel !== null}
      onOpenChange={(o) => !o && onClose()}
      title={`Webhook “${channel?.name ?? ""}” added`}
      description="Copy the signing secret now and give it to the receiver: FlowGate cannot show it again."
      footer={
        <button type="button" className="btn btn--primary" onClick={onClose}>
          I have copied it
        </button>
      }
    >
      <div className="secret">
        <code className="secret__value" aria-label="Signing secret">
          {channel?.secret}
        </code>
        <CopyButton text={channel?.secret ?? ""} label="Copy secret" className="btn--primary" />
      </div>
      <p className="muted">
        Each delivery carries <code>X-FlowGate-Signature: sha256=&lt;HMAC-SHA256 of the body&gt;</code> keyed with this secret, and{" "}
        <code>X-FlowGate-Timestamp</code>; check both (docs/alerting.md shows how) and answer 2xx.
      </p>
    </Dialog>
  );
}

/** The channel's newest notifications and how each went. */
export function DeliveriesDialog({ orgId, channel, onClose }: { orgId: string; channel: Channel | null; onClose: () => void }) {
  const deliveries = useQuery({ ...alertQueries.deliveries(orgId, channel?.id ?? ""), enabled: channel !== null, refetchInterval: 5_000 });
  return (
    <Dialog open={channel !== null} onOpenChange={(o) => !o && onClose()} wide title={`Deliveries of “${channel?.name ?? ""}”`}>
      {deliveries.isPending ? (
        <Skeleton rows={3} columns={4} />
      ) : deliveries.isError ? (
        <ErrorState error={deliveries.error} onRetry={() => void deliveries.refetch()} />
      ) : deliveries.data.length === 0 ? (
        <EmptyState title="Nothing delivered yet">
          Firing and resolved notifications of the rules that name this channel are listed here (test deliveries are not).
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="Deliveries">
            <thead>
              <tr>
                <th>Event</th>
                <th>Outcome</th>
                <th>Queued</th>
                <th>Sent</th>
              </tr>
            </thead>
            <tbody>
              {deliveries.data.map((d) => (
                <tr key={d.id}>
                  <td>
                    <span className={`badge badge--${d.event === "firing" ? "bad" : d.event === "resolved" ? "good" : "muted"}`}>{d.event}</span>
                  </td>
                  <td className={d.state === "failed" ? "text-bad" : undefined}>{deliveryOutcome(d)}</td>
                  <td>
                    <RelativeTime iso={d.created_at} />
                  </td>
                  <td>{d.sent_at ? <RelativeTime iso={d.sent_at} /> : <span className="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Dialog>
  );
}
