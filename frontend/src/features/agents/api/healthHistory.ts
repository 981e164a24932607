/** Health history queries: the fleet's counts over time and one gateway's transitions. */
import { keepPreviousData, queryOptions } from "@tanstack/react-query";
import { api, type Schemas } from "@/lib/api-client";
import { gatewayKeys } from "./gateways";

export type FleetHealthHistory = Schemas["FleetHealthHistory"];
export type HealthHistoryPage = Schemas["HealthHistoryPage"];
export type HealthTransition = Schemas["HealthTransitionOut"];

/** The chart's ranges: how far back, and the bucket size the API is asked for. */
export const FLEET_RANGES = {
  "1h": { label: "1 h", seconds: 3600, step: "2m" },
  "24h": { label: "24 h", seconds: 86_400, step: "1h" },
} as const;
export type FleetRange = keyof typeof FLEET_RANGES;

/** How far back the details timeline looks; "Older" widens it step by step. */
export const TIMELINE_WINDOWS_SECONDS = [86_400, 7 * 86_400, 30 * 86_400] as const;
const PAGE_LIMIT = 1000;
/** At most this many pages (of 1000) per window: a gateway flapping for weeks stays bounded. */
const MAX_PAGES = 5;

export const healthHistoryKeys = {
  all: (orgId: string) => [...gatewayKeys.all(orgId), "health-history"] as const,
  fleet: (orgId: string, range: FleetRange) => [...healthHistoryKeys.all(orgId), "fleet", range] as const,
  gateway: (orgId: string, id: string, windowSeconds: number) =>
    [...healthHistoryKeys.all(orgId), "gateway", id, windowSeconds] as const,
};

const isoAgo = (seconds: number) => new Date(Date.now() - seconds * 1000).toISOString();

export interface GatewayHistory {
  /** Oldest first, as the API pages them. */
  items: HealthTransition[];
  since: string;
  /** True when MAX_PAGES did not reach the end of the window (the newest are missing). */
  truncated: boolean;
}

export const healthHistoryQueries = {
  fleet: (orgId: string, range: FleetRange) =>
    queryOptions({
      queryKey: healthHistoryKeys.fleet(orgId, range),
      queryFn: ({ signal }) =>
        api.get<FleetHealthHistory>(
          "/api/v1/fleet/health-history",
          { org_id: orgId, since: isoAgo(FLEET_RANGES[range].seconds - 1), step: FLEET_RANGES[range].step },
          signal,
        ),
    }),
  /** Every transition in the window, keyset-paged through `next_cursor`. */
  gateway: (orgId: string, id: string, windowSeconds: number) =>
    queryOptions({
      queryKey: healthHistoryKeys.gateway(orgId, id, windowSeconds),
      queryFn: async ({ signal }): Promise<GatewayHistory> => {
        const since = isoAgo(windowSeconds - 1);
        const items: HealthTransition[] = [];
        let cursor: string | null = null;
        for (let page = 0; page < MAX_PAGES; page++) {
          const body: HealthHistoryPage = await api.get<HealthHistoryPage>(
            `/api/v1/gateways/${id}/health/history`,
            { org_id: orgId, since, limit: PAGE_LIMIT, cursor },
            signal,
          );
          items.push(...body.items);
          cursor = body.next_cursor;
          if (!cursor) return { items, since, truncated: false };
        }
        return { items, since, truncated: true };
      },
      // "Older" widens the window: keep the list on screen while the wider one loads.
      placeholderData: keepPreviousData,
    }),
};
