import { fetchGatewayPage, type Gateway, type GatewayFilters } from "./gateways";

/**
 * Every gateway matching `filters`, fetched page by page as the list pages them (the PATCHes
 * that follow cost far more than these GETs), for bulk actions. Keyset pages stay correct while
 * the action changes what matches: the cursor is a position in (name, id), not an offset.
 */
export async function* walkMatching(
  orgId: string,
  filters: GatewayFilters,
  pageSize: number,
  signal?: AbortSignal,
): AsyncGenerator<Gateway> {
  let cursor: string | null = null;
  do {
    const page = await fetchGatewayPage(orgId, filters, cursor, pageSize, signal);
    yield* page.items;
    cursor = page.next_cursor ?? null;
  } while (cursor && !signal?.aborted);
}
