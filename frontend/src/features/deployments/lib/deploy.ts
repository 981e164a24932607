/**
 * The deploy form's rules: batch sizes as typed ("1, 10%, 50%, 100%"), the target and
 * strategy bodies of `POST /api/v1/deployments`, and how a deployment's state reads.
 */
import type { Deployment, DeploymentCreate } from "../api/deployments";

export type Batches = { ok: true; batches: (number | string)[] } | { ok: false; error: string };

/** Cumulative sizes, counts or percentages, separated by commas or spaces. */
export function parseBatches(text: string): Batches {
  const parts = text
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) return { ok: false, error: "Give at least one batch size, e.g. 1, 10%, 100%" };
  if (parts.length > 20) return { ok: false, error: "At most 20 batches" };
  const batches: (number | string)[] = [];
  for (const p of parts) {
    const pct = /^(\d{1,3})%$/.exec(p);
    if (pct) {
      const n = Number(pct[1]);
      if (n < 1 || n > 100) return { ok: false, error: `“${p}”: a percentage is 1% to 100%` };
      batches.push(`${n}%`);
    } else if (/^\d+$/.test(p) && Number(p) >= 1) {
      batches.push(Number(p));
    } else {
      return { ok: false, error: `“${p}” is not a count (1, 5) or a percentage (10%)` };
    }
  }
  return { ok: true, batches };
}

export type TargetChoice =
  | { kind: "selector"; selector: string }
  | { kind: "gateways"; ids: string[] }
  | { kind: "all" };

export function targetBody(choice: TargetChoice): DeploymentCreate["target"] {
  if (choice.kind === "selector") return { selector: choice.selector.trim() };
  if (choice.kind === "gateways") return { gateway_ids: choice.ids };
  return { all: true };
}

/** "env=prod", "3 gateways", "all gateways" for a stored target. */
export function describeTarget(target: Record<string, unknown>): string {
  if (typeof target.selector === "string") return target.selector === "" ? "all gateways (empty selector)" : target.selector;
  if (Array.isArray(target.gateway_ids)) {
    const n = target.gateway_ids.length;
    return `${n} gateway${n === 1 ? "" : "s"}`;
  }
  if (target.all === true) return "all gateways";
  if (target.rollback === true || "rollback_of" in target) return "gateways of the original";
  return "—";
}

export function describeStrategy(strategy: Record<string, unknown>): string {
  if (strategy.type !== "staged") return "all at once";
  const batches = Array.isArray(strategy.batches) ? strategy.batches.join(" → ") : "";
  return `staged ${batches}`.trim();
}

export const STATE_TONE: Record<string, "good" | "warn" | "bad" | "info" | "muted"> = {
  pending: "muted",
  rolling_out: "info",
  paused: "warn",
  completed: "good",
  failed: "bad",
  cancelled: "muted",
  rolled_back: "warn",
};

export const TARGET_TONE: Record<string, "good" | "warn" | "bad" | "info" | "muted"> = {
  pending: "muted",
  sent: "info",
  applying: "info",
  applied: "good",
  failed: "bad",
  superseded: "muted",
};

export function stateLabel(state: string): string {
  return state.replace(/_/g, " ");
}

/** Which steering buttons a deployment in this state offers (the server decides anyway). */
export function actionsFor(d: Pick<Deployment, "state" | "rollback_of">): { pause: boolean; resume: boolean; cancel: boolean; rollback: boolean } {
  const s = d.state;
  return {
    pause: s === "rolling_out",
    resume: s === "paused",
    cancel: s === "rolling_out" || s === "pending" || s === "paused",
    rollback: s !== "rolled_back" && s !== "pending" && !d.rollback_of,
  };
}
