import { fetchGatewayPage, type Gateway, type GatewayFilters } from "./gateways";

/** Every gateway matching `filters`, page by page (500 a page), for bulk actions. */
export async function* walkMatching(orgId: string, filters: GatewayFilters, signal?: AbortSignal): AsyncGenerator<Gateway> {
  let cursor: string | null = null;
  do {
    const page = await fetchGatewayPage(orgId, filters, cursor, 500, signal);
    yield* page.items;
    cursor = page.next_cursor ?? null;
  } while (cursor && !signal?.aborted);
}
