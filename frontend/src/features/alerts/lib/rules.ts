/** What each rule kind means and takes, and the words the alerting pages use (docs/alerting.md). */
import type { AlertRule, AlertRuleCreate, ChannelTestResult, Delivery, RuleKind, Silence } from "../api/alerts";

type Param = "for_minutes" | "percent" | "within_minutes" | "hours";

export interface KindInfo {
  label: string;
  param: Param;
  /** The threshold's field label in the form. */
  paramLabel: string;
  /** null: the threshold is required. */
  default: number | null;
  min: number;
  max: number;
  /** The gateway kinds take a label selector. */
  selector: boolean;
}

export const KINDS: Record<RuleKind, KindInfo> = {
  gateway_unhealthy: {
    label: "A gateway is unhealthy or offline",
    param: "for_minutes",
    paramLabel: "For at least (minutes)",
    default: 5,
    min: 0,
    max: 10080,
    selector: true,
  },
  fleet_unhealthy_percent: {
    label: "Too much of the fleet is unhealthy",
    param: "percent",
    paramLabel: "More than (%)",
    default: null,
    min: 0,
    max: 99.999,
    selector: true,
  },
  deployment_failed: {
    label: "A deployment failed or was rolled back",
    param: "within_minutes",
    paramLabel: "Keep firing for (minutes)",
    default: 60,
    min: 1,
    max: 10080,
    selector: false,
  },
  token_expiring: {
    label: "A registration token is about to expire",
    param: "hours",
    paramLabel: "Expires within (hours)",
    default: 24,
    min: 0.01,
    max: 8760,
    selector: false,
  },
};

export const KIND_ORDER: RuleKind[] = ["gateway_unhealthy", "fleet_unhealthy_percent", "deployment_failed", "token_expiring"];

function num(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Number(value.toFixed(3)));
}

/** The rule's condition in words: "unhealthy or offline for 5 min or more". */
export function describeCondition(rule: Pick<AlertRule, "kind" | "for_minutes" | "percent" | "within_minutes" | "hours">): string {
  const info = KINDS[rule.kind];
  const value = rule[info.param] ?? info.default;
  const v = value === null || value === undefined ? "?" : num(value);
  switch (rule.kind) {
    case "gateway_unhealthy":
      return value === 0 ? "a gateway is unhealthy or offline" : `a gateway is unhealthy or offline for ${v} min or more`;
    case "fleet_unhealthy_percent":
      return `more than ${v} % of the gateways are unhealthy or offline`;
    case "deployment_failed":
      return `a deployment failed or was rolled back (fires for ${v} min)`;
    case "token_expiring":
      return `a registration token expires within ${v} h`;
  }
}

export interface RuleForm {
  name: string;
  kind: RuleKind;
  /** The threshold as typed; empty: the kind's default. */
  threshold: string;
  selector: string;
  channelIds: string[];
  enabled: boolean;
}

/**
 * The create body: only the kind's own threshold (any other is refused), the selector only for
 * the gateway kinds and only when one is typed (none = every gateway). The server checks the
 * bounds and the selector and answers a 422 naming what is wrong.
 */
export function ruleBody(form: RuleForm): AlertRuleCreate {
  const info = KINDS[form.kind];
  const body: AlertRuleCreate = { name: form.name.trim(), kind: form.kind, channel_ids: form.channelIds, enabled: form.enabled };
  const typed = form.threshold.trim();
  if (typed !== "") body[info.param] = Number(typed);
  const selector = form.selector.trim();
  if (info.selector && selector !== "") body.selector = selector;
  return body;
}

/** When a silence of `hours` starting now ends, as ISO 8601 with a time zone (UTC). */
export function silenceEnd(now: number, hours: number): string {
  return new Date(now + hours * 3_600_000).toISOString();
}

/** What a silence matches: "rule “x” and env=prod", "rule “x”", "env=prod", "every alert". */
export function describeSilence(silence: Pick<Silence, "rule_id" | "selector">, ruleName: (id: string) => string | undefined): string {
  const parts: string[] = [];
  if (silence.rule_id) parts.push(`rule “${ruleName(silence.rule_id) ?? "deleted rule"}”`);
  if (silence.selector) parts.push(silence.selector);
  else if (silence.selector === "") parts.push(silence.rule_id ? "any labels" : "every alert");
  return parts.join(" and ") || "every alert";
}

/** A delivery's outcome: "sent (200)", "failed after 8 attempts: timed out", "retrying (attempt 2 failed: 500)". */
export function deliveryOutcome(d: Pick<Delivery, "state" | "attempts" | "last_status" | "last_error">): string {
  const last = d.last_error ?? (d.last_status !== null ? `HTTP ${d.last_status}` : null);
  if (d.state === "sent") return d.last_status !== null ? `sent (HTTP ${d.last_status})` : "sent";
  if (d.state === "failed") return `failed after ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}${last ? `: ${last}` : ""}`;
  if (d.attempts === 0) return "queued";
  return `retrying (attempt ${d.attempts} failed${last ? `: ${last}` : ""})`;
}

/** The "Send test" result: "Delivered (HTTP 200)" or "Not delivered: HTTP 500" / the error. */
export function testOutcome(r: ChannelTestResult): string {
  if (r.delivered) return r.status_code !== null ? `Delivered (HTTP ${r.status_code})` : "Delivered";
  const why = r.error ?? (r.status_code !== null ? `HTTP ${r.status_code}` : "no answer");
  return `Not delivered: ${why}`;
}

const PLAIN = /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;

/**
 * A label selector matching exactly these labels (`env=prod,region=eu`), for a silence started
 * from an alert. Labels a plain `key=value` cannot express are left out (the silence then matches
 * a little more, never less).
 */
export function selectorOf(labels: Record<string, unknown>): string {
  return Object.entries(labels)
    .filter(([k, v]) => typeof v === "string" && PLAIN.test(k) && (v === "" || PLAIN.test(v)))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(",");
}
