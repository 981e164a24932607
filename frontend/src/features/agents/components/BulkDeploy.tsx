import { useEffect, useState } from "react";
import { useNavigate } from "react-router";
import { Dialog } from "@/components/Dialog";
import { DeployDialog, type PresetTarget } from "@/features/deployments/components/DeployDialog";
import { errorMessage } from "@/lib/api-client";
import { selectorOnly, type GatewayFilters } from "../api/gateways";
import { walkMatching } from "../api/walk";
import { targetCount, type BulkTarget } from "./BulkDialogs";

function agents(n: number | null): string {
  return n === null ? "all matching agents" : `${n} agent${n === 1 ? "" : "s"}`;
}

function hasFilters(f: GatewayFilters): boolean {
  return Boolean(f.name || f.status || f.health || f.selector);
}

/**
 * The deploy target for a bulk selection: the ticked agents by id; every matching agent as the
 * label selector itself (so agents that match later are not the point) or "all" when that is
 * all the filter says; other filters are resolved to ids first, page by page.
 */
export async function presetFor(orgId: string, target: BulkTarget, signal?: AbortSignal): Promise<PresetTarget> {
  const count = targetCount(target);
  if (target.mode === "selected") {
    return { choice: { kind: "gateways", ids: target.gateways.map((g) => g.id) }, description: `${agents(count)} selected`, count };
  }
  if (!hasFilters(target.filters)) return { choice: { kind: "all" }, description: "all agents", count };
  if (selectorOnly(target.filters)) {
    return { choice: { kind: "selector", selector: target.filters.selector }, description: `agents matching ${target.filters.selector}`, count };
  }
  const ids: string[] = [];
  for await (const g of walkMatching(orgId, target.filters, 200, signal)) ids.push(g.id);
  return { choice: { kind: "gateways", ids }, description: `the ${agents(ids.length)} matching the filter`, count: ids.length };
}

/** "Deploy a configuration version" to the agents picked on the agents page. */
export function BulkDeployDialog({ orgId, target, onClose }: { orgId: string; target: BulkTarget | null; onClose: (finished: boolean) => void }) {
  const navigate = useNavigate();
  const [preset, setPreset] = useState<PresetTarget | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!target) return;
    const abort = new AbortController();
    presetFor(orgId, target, abort.signal).then(setPreset, (e: unknown) => {
      if (!abort.signal.aborted) setError(errorMessage(e));
    });
    return () => {
      abort.abort();
      setPreset(null);
      setError(null);
    };
  }, [orgId, target]);
  if (!target) return null;
  if (error || !preset) {
    return (
      <Dialog open onOpenChange={(o) => !o && onClose(false)} title="Deploy a configuration">
        {error ? (
          <p className="notice notice--error" role="alert">
            {error}
          </p>
        ) : (
          <p role="status">Collecting the matching agents…</p>
        )}
      </Dialog>
    );
  }
  return (
    <DeployDialog
      orgId={orgId}
      open
      target={preset}
      onOpenChange={(o) => !o && onClose(false)}
      onCreated={(d) => {
        onClose(true);
        navigate(`/orgs/${orgId}/deployments/${d.id}`);
      }}
    />
  );
}
