/** The organisation's audit log (`GET /api/v1/audit`, admins only), newest first, keyset-paged. */
import { keepPreviousData, queryOptions } from "@tanstack/react-query";
import { api, type Schemas } from "@/lib/api-client";

export type AuditEntry = Schemas["AuditEntryOut"];
export type AuditPage = Schemas["AuditPage"];

export interface AuditFilters {
  /** An actor id or email / key name. */
  actor?: string;
  /** An action (`gateway.deactivate`) or a prefix ending in `.` (`alert_rule.`). */
  action?: string;
  /** An object id, or `type:id`. */
  object?: string;
}

export const AUDIT_PAGE = 50;

export const auditKeys = {
  all: (orgId: string) => ["orgs", orgId, "audit"] as const,
  page: (orgId: string, filters: AuditFilters, cursor: string | null) => [...auditKeys.all(orgId), { ...filters, cursor }] as const,
};

export const auditQueries = {
  page: (orgId: string, filters: AuditFilters, cursor: string | null) =>
    queryOptions({
      queryKey: auditKeys.page(orgId, filters, cursor),
      queryFn: ({ signal }) => api.get<AuditPage>("/api/v1/audit", { org_id: orgId, ...filters, cursor, limit: AUDIT_PAGE }, signal),
      placeholderData: keepPreviousData,
    }),
};
