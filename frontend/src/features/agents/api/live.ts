/**
 * Applies live fleet events to the query cache. The pure functions (patch*, apply*) are the
 * rules; `applyFleetEvent` wires them to TanStack Query:
 * - `gateway.status`: the gateway is patched in place in every cached page and detail; the
 *   fleet counts are refetched (coalesced, at most every 2 s: the server caches them as long).
 *   A gateway on no cached page may now match a shown filter: first pages are refetched (also
 *   at most every 2 s, so a fleet in churn costs one request per open list, not one per event).
 * - `gateway.registered`: first pages and counts are refetched (coalesced), so a new agent that
 *   matches the current filter appears within a second.
 * - `gateway.deleted`: removed from pages, detail dropped, counts refetched.
 * - `gateway.changed` / `config.changed`: those gateways' queries and the lists are refetched.
 * - `overflow` (the server dropped events for this client): everything is refetched.
 * - Health history (fleet chart, a gateway's timeline): every health change is followed by a
 *   `gateway.status` carrying the new health, so such an event refetches the fleet chart and
 *   that gateway's timeline, each at most every HISTORY_MS.
 */
import type { QueryClient } from "@tanstack/react-query";
import type { Coalescer } from "@/lib/coalesce";
import { gatewayIdOf, type FleetEvent, type GatewayStatusData } from "@/lib/events";
import { gatewayKeys, type Gateway, type GatewayPage, type GatewayStatusReport } from "./gateways";
import { healthHistoryKeys } from "./healthHistory";

export function patchGateway(gateway: Gateway, data: GatewayStatusData): Gateway {
  const next: Gateway = { ...gateway };
  if (typeof data.status === "string") next.status = data.status as Gateway["status"];
  if (typeof data.health === "string" || typeof data.health_score === "number") {
    next.health = {
      status: typeof data.health === "string" ? data.health : gateway.health.status,
      health_score: typeof data.health_score === "number" ? data.health_score : gateway.health.health_score,
    };
  }
  if (data.last_seen !== undefined) next.last_seen = data.last_seen;
  return next;
}

/** The page with that gateway patched, or the same page object when it is not on it. */
export function applyStatusToPage(page: GatewayPage, data: GatewayStatusData): GatewayPage {
  const index = page.items.findIndex((g) => g.id === data.gateway_id);
  if (index < 0) return page;
  const items = page.items.slice();
  items[index] = patchGateway(items[index] as Gateway, data);
  return { ...page, items };
}

export function removeFromPage(page: GatewayPage, gatewayId: string): GatewayPage {
  if (!page.items.some((g) => g.id === gatewayId)) return page;
  return { ...page, items: page.items.filter((g) => g.id !== gatewayId) };
}

export function applyStatusToReport(report: GatewayStatusReport, data: GatewayStatusData): GatewayStatusReport {
  return {
    ...report,
    status: typeof data.status === "string" ? (data.status as GatewayStatusReport["status"]) : report.status,
    health: {
      ...report.health,
      status: typeof data.health === "string" ? data.health : report.health.status,
      health_score: typeof data.health_score === "number" ? data.health_score : report.health.health_score,
      last_seen: data.last_seen !== undefined ? data.last_seen : report.health.last_seen,
    },
  };
}

/** `config.changed` names its gateways in `gateway_ids` (one push may target many). */
export function configGatewayIds(event: FleetEvent): string[] {
  const single = gatewayIdOf(event);
  const many = (event.data as { gateway_ids?: unknown }).gateway_ids;
  const ids = Array.isArray(many) ? many.filter((v): v is string => typeof v === "string") : [];
  return single ? [single, ...ids] : ids;
}

/** The slow coalescing window (counts; status changes of gateways not on screen). */
export const SLOW_MS = 2_000;
/** Health history is refetched at most this often per chart or timeline. */
export const HISTORY_MS = 5_000;

function isFirstPage(key: readonly unknown[]): boolean {
  const params = key[key.length - 1] as { cursor?: unknown } | undefined;
  return !params?.cursor;
}

export function applyFleetEvent(qc: QueryClient, orgId: string, event: FleetEvent, later: Coalescer): void {
  const id = gatewayIdOf(event);
  const refreshCounts = () =>
    later.schedule(
      `summary:${orgId}`,
      () => {
        void qc.invalidateQueries({ queryKey: gatewayKeys.summary(orgId) });
        void qc.invalidateQueries({ queryKey: [...gatewayKeys.all(orgId), "count"] });
      },
      SLOW_MS,
    );
  const refreshFirstPages = (delay?: number) =>
    later.schedule(
      `first-pages:${orgId}:${delay ?? "fast"}`,
      () => {
        void qc.invalidateQueries({ queryKey: gatewayKeys.lists(orgId), predicate: (q) => isFirstPage(q.queryKey) });
      },
      delay,
    );
  switch (event.type) {
    case "gateway.status": {
      if (!id) return;
      const data = event.data as GatewayStatusData;
      let shown = false;
      qc.setQueriesData<GatewayPage>({ queryKey: gatewayKeys.lists(orgId) }, (page) => {
        if (!page) return page;
        const next = applyStatusToPage(page, data);
        if (next !== page) shown = true;
        return next;
      });
      if (!shown) refreshFirstPages(SLOW_MS);
      qc.setQueryData<Gateway>(gatewayKeys.detail(orgId, id), (g) => (g ? patchGateway(g, data) : g));
      qc.setQueryData<GatewayStatusReport>(gatewayKeys.status(orgId, id), (r) =>
        r ? applyStatusToReport(r, data) : r,
      );
      refreshCounts();
      if (typeof data.health === "string") {
        later.schedule(
          `health-history:fleet:${orgId}`,
          () => void qc.invalidateQueries({ queryKey: [...healthHistoryKeys.all(orgId), "fleet"] }),
          HISTORY_MS,
        );
        later.schedule(
          `health-history:gateway:${orgId}:${id}`,
          () => void qc.invalidateQueries({ queryKey: [...healthHistoryKeys.all(orgId), "gateway", id] }),
          HISTORY_MS,
        );
      }
      return;
    }
    case "gateway.registered":
      refreshFirstPages();
      if (id) void qc.invalidateQueries({ queryKey: gatewayKeys.detail(orgId, id) });
      refreshCounts();
      return;
    case "gateway.deleted":
      if (!id) return;
      qc.setQueriesData<GatewayPage>({ queryKey: gatewayKeys.lists(orgId) }, (page) =>
        page ? removeFromPage(page, id) : page,
      );
      qc.removeQueries({ queryKey: gatewayKeys.detail(orgId, id) });
      qc.removeQueries({ queryKey: gatewayKeys.status(orgId, id) });
      refreshCounts();
      return;
    case "gateway.changed":
      if (id) {
        void qc.invalidateQueries({ queryKey: gatewayKeys.detail(orgId, id) });
        void qc.invalidateQueries({ queryKey: gatewayKeys.status(orgId, id) });
      }
      later.schedule(`lists:${orgId}`, () => void qc.invalidateQueries({ queryKey: gatewayKeys.lists(orgId) }));
      refreshCounts();
      return;
    case "config.changed":
      for (const gid of configGatewayIds(event)) {
        void qc.invalidateQueries({ queryKey: gatewayKeys.status(orgId, gid) });
        void qc.invalidateQueries({ queryKey: gatewayKeys.detail(orgId, gid) });
      }
      later.schedule(`lists:${orgId}`, () => void qc.invalidateQueries({ queryKey: gatewayKeys.lists(orgId) }));
      return;
    case "overflow":
      void qc.invalidateQueries({ queryKey: gatewayKeys.all(orgId) });
      return;
  }
}

/** A gateway's name from whatever the cache holds (for the activity feed), else null. */
export function cachedGatewayName(qc: QueryClient, orgId: string, id: string): string | null {
  const detail = qc.getQueryData<Gateway>(gatewayKeys.detail(orgId, id));
  if (detail) return detail.name;
  for (const [, page] of qc.getQueriesData<GatewayPage>({ queryKey: gatewayKeys.lists(orgId) })) {
    const found = page?.items.find((g) => g.id === id);
    if (found) return found.name;
  }
  return null;
}
