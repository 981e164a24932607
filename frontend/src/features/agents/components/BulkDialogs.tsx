import { useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import { Dialog } from "@/components/Dialog";
import { deactivateGateway, gatewayKeys, storeGateway, updateGateway, type Gateway, type GatewayFilters } from "../api/gateways";
import { walkMatching } from "../api/walk";
import { runBulk, summarize, type BulkOutcome, type BulkProgress } from "../lib/bulk";
import { mergeLabels, parseLabelAssignments } from "../lib/selector";

/** What a bulk action applies to: the ticked rows, or every gateway the filter matches. */
export type BulkTarget =
  | { mode: "selected"; gateways: Gateway[] }
  | { mode: "matching"; filters: GatewayFilters; pageSize: number; count: number | null };

export function targetCount(target: BulkTarget): number | null {
  return target.mode === "selected" ? target.gateways.length : target.count;
}

function agentsText(n: number | null): string {
  if (n === null) return "all matching agents";
  return `${n} agent${n === 1 ? "" : "s"}`;
}

function source(orgId: string, target: BulkTarget, signal: AbortSignal): Iterable<Gateway> | AsyncIterable<Gateway> {
  return target.mode === "selected" ? target.gateways : walkMatching(orgId, target.filters, target.pageSize, signal);
}

function ProgressView({ progress, total, verb }: { progress: BulkProgress; total: number | null; verb: string }) {
  const pct = total ? Math.min(100, Math.round((progress.done / total) * 100)) : undefined;
  return (
    <div className="bulk-progress">
      <progress max={total ?? undefined} value={total ? progress.done : undefined} aria-label="Progress">
        {pct}%
      </progress>
      <p role="status">
        {progress.done}
        {total !== null ? ` / ${total}` : ""} done · {summarize(progress, verb)}
      </p>
      {progress.errors.length > 0 && (
        <ul className="bulk-progress__errors">
          {progress.errors.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

interface BulkProps {
  orgId: string;
  target: BulkTarget | null;
  onClose: (finished: boolean) => void;
}

function useBulkRun(orgId: string) {
  const qc = useQueryClient();
  const [progress, setProgress] = useState<BulkProgress | null>(null);
  const [result, setResult] = useState<BulkProgress | null>(null);
  const abort = useRef<AbortController | null>(null);
  const run = async (target: BulkTarget, action: (g: Gateway) => Promise<BulkOutcome>) => {
    abort.current = new AbortController();
    setResult(null);
    setProgress({ done: 0, updated: 0, unchanged: 0, failed: 0, errors: [] });
    const final = await runBulk(source(orgId, target, abort.current.signal), action, {
      concurrency: 4,
      describe: (g) => g.name,
      onProgress: setProgress,
      signal: abort.current.signal,
    });
    setResult(final);
    void qc.invalidateQueries({ queryKey: gatewayKeys.all(orgId) });
  };
  const reset = () => {
    abort.current?.abort();
    setProgress(null);
    setResult(null);
  };
  return { progress, result, run, reset, running: progress !== null && result === null, qc };
}

/** Merges key=value labels into each target gateway's labels (one PATCH per gateway). */
export function SetLabelsDialog({ orgId, target, onClose }: BulkProps) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const bulk = useBulkRun(orgId);
  const count = target ? targetCount(target) : null;

  const close = () => {
    const finished = bulk.result !== null;
    bulk.reset();
    setText("");
    setError(null);
    onClose(finished);
  };

  const apply = () => {
    if (!target) return;
    const parsed = parseLabelAssignments(text);
    if (!parsed.ok) {
      setError(parsed.error);
      return;
    }
    setError(null);
    void bulk.run(target, async (g) => {
      const labels = mergeLabels(g.labels, parsed.labels);
      if (!labels) return "unchanged";
      storeGateway(bulk.qc, orgId, await updateGateway(orgId, g.id, { labels }));
      return "updated";
    });
  };

  return (
    <Dialog
      open={target !== null}
      onOpenChange={(o) => !o && close()}
      title={`Set labels on ${agentsText(count)}`}
      description="Each key=value is added to the agents' labels; an existing key gets the new value. Other labels stay."
      footer={
        bulk.result ? (
          <button type="button" className="btn btn--primary" onClick={close}>
            Done
          </button>
        ) : (
          <>
            <button type="button" className="btn" onClick={close}>
              Cancel
            </button>
            <button type="button" className="btn btn--primary" disabled={bulk.running} onClick={apply}>
              {bulk.running ? "Applying…" : "Apply labels"}
            </button>
          </>
        )
      }
    >
      <label className="field">
        <span>Labels</span>
        <textarea
          className="mono"
          rows={3}
          placeholder="env=prod, team=platform"
          value={text}
          disabled={bulk.progress !== null}
          aria-invalid={error ? true : undefined}
          onChange={(e) => setText(e.target.value)}
        />
        {error && (
          <span className="field__error" role="alert">
            {error}
          </span>
        )}
      </label>
      {bulk.progress && <ProgressView progress={bulk.progress} total={count} verb="updated" />}
      {bulk.result && (
        <p className="notice notice--ok" role="status" aria-label="Result">
          {summarize(bulk.result, "updated")}
        </p>
      )}
    </Dialog>
  );
}

/** Deactivates every target gateway after a confirmation that states the count. */
export function BulkDeactivateDialog({ orgId, target, onClose }: BulkProps) {
  const bulk = useBulkRun(orgId);
  const count = target ? targetCount(target) : null;
  const close = () => {
    const finished = bulk.result !== null;
    bulk.reset();
    onClose(finished);
  };
  return (
    <Dialog
      open={target !== null}
      onOpenChange={(o) => !o && close()}
      title={`Deactivate ${agentsText(count)}?`}
      description="Deactivated agents go offline at once: their OpAMP tokens are revoked and live connections closed. They need a registration token to come back."
      footer={
        bulk.result ? (
          <button type="button" className="btn btn--primary" onClick={close}>
            Done
          </button>
        ) : (
          <>
            <button type="button" className="btn" onClick={close}>
              Cancel
            </button>
            <button
              type="button"
              className="btn btn--danger"
              disabled={bulk.running}
              onClick={() =>
                target &&
                void bulk.run(target, async (g) => {
                  if (g.status === "inactive") return "unchanged";
                  await deactivateGateway(orgId, g.id);
                  return "updated";
                })
              }
            >
              {bulk.running ? "Deactivating…" : `Deactivate ${agentsText(count)}`}
            </button>
          </>
        )
      }
    >
      {bulk.progress && <ProgressView progress={bulk.progress} total={count} verb="deactivated" />}
      {bulk.result && (
        <p className="notice notice--ok" role="status" aria-label="Result">
          {summarize(bulk.result, "deactivated")}
        </p>
      )}
    </Dialog>
  );
}
