/** How an audit entry reads in the table. */
import type { AuditEntry, AuditFilters } from "../api/audit";

const KIND: Record<string, string> = {
  user: "user",
  api_key: "API key",
  registration_token: "registration token",
  cli: "CLI",
  anonymous: "anonymous",
};

/** Who: the email / key / token name, or the kind alone ("anonymous"). */
export function actorText(e: Pick<AuditEntry, "actor_kind" | "actor_label" | "actor_id">): { name: string; kind: string } {
  const kind = KIND[e.actor_kind] ?? e.actor_kind;
  return { name: e.actor_label ?? (e.actor_id ? `${kind} ${e.actor_id.slice(0, 8)}` : kind), kind };
}

/** What it acted on: "gateway 24cb266a…", or the type alone, or "—". */
export function objectText(e: Pick<AuditEntry, "object_type" | "object_id">): string {
  const id = e.object_id ? (e.object_id.length > 12 ? `${e.object_id.slice(0, 8)}…` : e.object_id) : "";
  return [e.object_type?.replace(/_/g, " "), id].filter(Boolean).join(" ") || "—";
}

/** The filter for "everything done to this object": `type:id`, or the id alone. */
export function objectFilter(e: Pick<AuditEntry, "object_type" | "object_id">): string | null {
  if (!e.object_id) return null;
  return e.object_type ? `${e.object_type}:${e.object_id}` : e.object_id;
}

export const RESULT_TONE: Record<string, "good" | "warn" | "bad"> = { success: "good", denied: "warn", failed: "bad" };

/** The filters in the URL (`?actor=&action=&object=`), trimmed, empty ones left out. */
export function filtersFrom(params: URLSearchParams): AuditFilters {
  const out: AuditFilters = {};
  for (const key of ["actor", "action", "object"] as const) {
    const value = params.get(key)?.trim();
    if (value) out[key] = value;
  }
  return out;
}
