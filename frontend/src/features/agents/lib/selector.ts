/**
 * Text handling for the label selector box and the "set labels" form. The grammar itself
 * (Kubernetes label selectors) is the server's: it parses `selector=` and answers 4xx with the
 * reason, which the UI shows as is. Here we only tidy what the user typed and edit the text.
 */

/** The selector to send, or undefined when the box is blank (then no `selector=` is sent). */
export function normalizeSelector(text: string | null | undefined): string | undefined {
  if (!text) return undefined;
  const tidy = splitRequirements(text).join(", ");
  return tidy || undefined;
}

/** Splits on the commas between requirements, not those inside `in (a, b)`. */
export function splitRequirements(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of text) {
    if (ch === "(") depth += 1;
    if (ch === ")") depth = Math.max(0, depth - 1);
    if (ch === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim().replace(/\s+/g, " ")).filter(Boolean);
}

/** Adds `key=value` to a selector unless that exact requirement is already there. */
export function addRequirement(selector: string | undefined, key: string, value: string): string {
  const wanted = `${key}=${value}`;
  const parts = splitRequirements(selector ?? "");
  const same = (p: string) => p.replace(/\s+/g, "").replace("==", "=") === wanted;
  if (parts.some(same)) return parts.join(", ");
  return [...parts, wanted].join(", ");
}

export type LabelParse = { ok: true; labels: Record<string, string> } | { ok: false; error: string };

const KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;

/** Parses "env=prod, team=core" (commas or new lines) into labels to merge into gateways. */
export function parseLabelAssignments(text: string): LabelParse {
  const labels: Record<string, string> = {};
  const items = text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) return { ok: false, error: "Enter at least one key=value" };
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq < 0) return { ok: false, error: `"${item}" is not key=value` };
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (!KEY.test(key)) return { ok: false, error: `"${key}" is not a valid label key` };
    if (!VALUE.test(value)) return { ok: false, error: `"${value}" is not a valid label value (63 letters, digits, - _ . at most)` };
    labels[key] = value;
  }
  return { ok: true, labels };
}

/** The gateway's labels with `changes` merged in; null when nothing would change. */
export function mergeLabels(current: Record<string, unknown>, changes: Record<string, string>): Record<string, string> | null {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries(current)) merged[k] = String(v);
  let changed = false;
  for (const [k, v] of Object.entries(changes)) {
    if (merged[k] !== v) changed = true;
    merged[k] = v;
  }
  return changed ? merged : null;
}

export function transportLabel(transport: string): string {
  switch (transport) {
    case "rest":
      return "REST";
    case "opamp-ws":
      return "OpAMP WS";
    case "opamp-http":
      return "OpAMP HTTP";
    default:
      return transport;
  }
}
