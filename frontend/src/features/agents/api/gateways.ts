/**
 * Everything the UI asks the API about gateways: query keys, query options and mutations.
 * Pages, prefetching, live events and invalidation all use these factories, so a key is
 * never typed twice.
 */
import { keepPreviousData, queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, type Schemas } from "@/lib/api-client";

export type Gateway = Schemas["GatewayOut"];
export type GatewayPage = Schemas["GatewayPage"];
export type FleetSummary = Schemas["FleetSummary"];
export type GatewayStatusReport = Schemas["StatusOut"];

export const HEALTH_STATES = ["healthy", "warning", "unhealthy", "offline"] as const;
export type HealthState = (typeof HEALTH_STATES)[number];
export const STATUSES = ["registered", "active", "inactive", "error"] as const;

export interface GatewayFilters {
  status?: string;
  health?: string;
  name?: string;
  /** A Kubernetes-style label selector, sent only when the user typed one. */
  selector?: string;
}

export const PAGE_SIZE = 50;
/** Rows per page the list offers; one page is all the DOM ever holds (no client-side full list). */
export const PAGE_SIZES = [25, 50, 100, 200] as const;

export const gatewayKeys = {
  all: (orgId: string) => ["orgs", orgId, "gateways"] as const,
  lists: (orgId: string) => [...gatewayKeys.all(orgId), "list"] as const,
  list: (orgId: string, filters: GatewayFilters, cursor: string | null, limit: number) =>
    [...gatewayKeys.lists(orgId), { ...filters, cursor, limit }] as const,
  summary: (orgId: string) => [...gatewayKeys.all(orgId), "summary"] as const,
  count: (orgId: string, filters: GatewayFilters) => [...gatewayKeys.all(orgId), "count", filters] as const,
  detail: (orgId: string, id: string) => [...gatewayKeys.all(orgId), "detail", id] as const,
  status: (orgId: string, id: string) => [...gatewayKeys.all(orgId), "status", id] as const,
};

function listQuery(orgId: string, filters: GatewayFilters, cursor: string | null, limit: number) {
  return {
    org_id: orgId,
    status: filters.status,
    health: filters.health,
    name: filters.name,
    selector: filters.selector?.trim() || undefined,
    cursor,
    limit,
  };
}

export function fetchGatewayPage(
  orgId: string,
  filters: GatewayFilters,
  cursor: string | null,
  limit: number,
  signal?: AbortSignal,
): Promise<GatewayPage> {
  return api.get<GatewayPage>("/api/v1/gateways", listQuery(orgId, filters, cursor, limit), signal);
}

export const gatewayQueries = {
  list: (orgId: string, filters: GatewayFilters, cursor: string | null, limit = PAGE_SIZE) =>
    queryOptions({
      queryKey: gatewayKeys.list(orgId, filters, cursor, limit),
      queryFn: ({ signal }) => fetchGatewayPage(orgId, filters, cursor, limit, signal),
      // Keep showing the previous rows while the next filter or page loads: no flicker.
      placeholderData: keepPreviousData,
    }),
  /** Fleet counts for the whole organisation (one row fetched, only the summary is used). */
  summary: (orgId: string) =>
    queryOptions({
      queryKey: gatewayKeys.summary(orgId),
      queryFn: ({ signal }) =>
        api.get<GatewayPage>("/api/v1/gateways", { org_id: orgId, limit: 1 }, signal).then((p) => p.summary),
    }),
  /**
   * How many gateways a label selector matches (`GET /api/v1/gateways/count`, which takes only
   * `selector`): `null` when the server cannot say (no such endpoint, or an invalid selector,
   * whose message the list shows).
   */
  count: (orgId: string, selector: string) =>
    queryOptions({
      queryKey: gatewayKeys.count(orgId, { selector }),
      queryFn: async ({ signal }) => {
        try {
          const body = await api.get<unknown>("/api/v1/gateways/count", { org_id: orgId, selector }, signal);
          return countFromBody(body);
        } catch (error) {
          if (error instanceof ApiError && [404, 405, 422].includes(error.status)) return null;
          throw error;
        }
      },
    }),
  /**
   * How many gateways a selector matches, for the deploy form's live count: an invalid
   * selector is an error carrying the server's message (a 422), not an unknown count.
   */
  matching: (orgId: string, selector: string) =>
    queryOptions({
      queryKey: [...gatewayKeys.count(orgId, { selector }), "strict"] as const,
      queryFn: async ({ signal }) =>
        countFromBody(await api.get<unknown>("/api/v1/gateways/count", { org_id: orgId, selector }, signal)),
      placeholderData: keepPreviousData,
    }),
  detail: (orgId: string, id: string) =>
    queryOptions({
      queryKey: gatewayKeys.detail(orgId, id),
      queryFn: ({ signal }) => api.get<Gateway>(`/api/v1/gateways/${id}`, { org_id: orgId }, signal),
    }),
  status: (orgId: string, id: string) =>
    queryOptions({
      queryKey: gatewayKeys.status(orgId, id),
      queryFn: ({ signal }) =>
        api.get<GatewayStatusReport>(`/api/v1/gateways/${id}/status`, { org_id: orgId }, signal),
    }),
};

export function countFromBody(body: unknown): number | null {
  if (typeof body === "number") return body;
  if (body && typeof body === "object") {
    for (const key of ["count", "total", "matching"]) {
      const value = (body as Record<string, unknown>)[key];
      if (typeof value === "number") return value;
    }
  }
  return null;
}

/** The number of gateways a filter matches, when the fleet summary alone answers it. */
/** Only a label selector is set: the count endpoint answers it. */
export function selectorOnly(filters: GatewayFilters): filters is GatewayFilters & { selector: string } {
  return Boolean(filters.selector) && !filters.name && !filters.status && !filters.health;
}

export function countFromSummary(summary: FleetSummary | undefined, filters: GatewayFilters): number | null {
  if (!summary || filters.name || filters.selector) return null;
  if (filters.status && filters.health) return null;
  if (filters.health) return summary.by_health[filters.health] ?? 0;
  if (filters.status) return summary.by_status[filters.status] ?? 0;
  return summary.total;
}

export function updateGateway(orgId: string, id: string, body: Schemas["GatewayUpdate"]): Promise<Gateway> {
  return api.patch<Gateway>(`/api/v1/gateways/${id}`, body, { org_id: orgId });
}

export function deactivateGateway(orgId: string, id: string): Promise<unknown> {
  return api.post(`/api/v1/gateways/${id}/deactivate`, undefined, { org_id: orgId });
}

export function deleteGateway(orgId: string, id: string): Promise<unknown> {
  return api.delete(`/api/v1/gateways/${id}`, { org_id: orgId });
}

/** Puts a fresh gateway into every cached list page and its detail query. */
export function storeGateway(qc: ReturnType<typeof useQueryClient>, orgId: string, gateway: Gateway): void {
  qc.setQueryData(gatewayKeys.detail(orgId, gateway.id), gateway);
  qc.setQueriesData<GatewayPage>({ queryKey: gatewayKeys.lists(orgId) }, (page) =>
    page && page.items.some((g) => g.id === gateway.id)
      ? { ...page, items: page.items.map((g) => (g.id === gateway.id ? gateway : g)) }
      : page,
  );
}

export function useUpdateGateway(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, body }: { id: string; body: Schemas["GatewayUpdate"] }) => updateGateway(orgId, id, body),
    onSuccess: (gateway) => {
      storeGateway(qc, orgId, gateway);
      void qc.invalidateQueries({ queryKey: gatewayKeys.status(orgId, gateway.id) });
    },
  });
}

export function useDeactivateGateway(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => deactivateGateway(orgId, id),
    onSuccess: () => qc.invalidateQueries({ queryKey: gatewayKeys.all(orgId) }),
  });
}

export function useDeleteGateway(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => deleteGateway(orgId, id),
    onSuccess: (_data, id) => {
      qc.removeQueries({ queryKey: gatewayKeys.detail(orgId, id) });
      qc.removeQueries({ queryKey: gatewayKeys.status(orgId, id) });
      return qc.invalidateQueries({ queryKey: gatewayKeys.lists(orgId) });
    },
  });
}
