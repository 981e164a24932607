import { QueryClient } from "@tanstack/react-query";
import { createCoalescer } from "@/lib/coalesce";
import { parseEvent } from "@/lib/events";
import { gatewayKeys, type Gateway, type GatewayPage } from "./gateways";
import { healthHistoryKeys } from "./healthHistory";
import { applyFleetEvent, applyStatusToPage, HISTORY_MS, patchGateway, removeFromPage, SLOW_MS } from "./live";

const gw = (id: string, extra: Partial<Gateway> = {}): Gateway => ({
  id,
  instance_id: `i-${id}`,
  org_id: "o",
  name: `gw-${id}`,
  status: "registered",
  health: { status: "unhealthy", health_score: 20 },
  last_seen: null,
  hostname: null,
  ip_address: null,
  labels: {},
  transport: "rest",
  agent_version: null,
  current_config_version: null,
  opamp_instance_uid: null,
  created_at: "2026-01-01T00:00:00Z",
  ...extra,
});
const page = (...items: Gateway[]): GatewayPage => ({
  items,
  next_cursor: null,
  summary: { total: items.length, by_status: {}, by_health: {} },
});
const STATUS = { gateway_id: "a", status: "active", health: "healthy", health_score: 100, last_seen: "2026-01-01T00:01:00Z" };

describe("pure reducers", () => {
  it("patches status, health and last seen", () => {
    expect(patchGateway(gw("a"), STATUS)).toMatchObject({
      status: "active",
      health: { status: "healthy", health_score: 100 },
      last_seen: "2026-01-01T00:01:00Z",
    });
  });
  it("leaves a page without the gateway untouched (same object: no re-render)", () => {
    const p = page(gw("b"));
    expect(applyStatusToPage(p, STATUS)).toBe(p);
    expect(removeFromPage(p, "a")).toBe(p);
    expect(removeFromPage(page(gw("a"), gw("b")), "a").items.map((g) => g.id)).toEqual(["b"]);
  });
});

describe("applyFleetEvent", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const setup = () => {
    const qc = new QueryClient();
    const first = gatewayKeys.list("o", {}, null, 50);
    const second = gatewayKeys.list("o", {}, "cursor-1", 50);
    qc.setQueryData(first, page(gw("a"), gw("b")));
    qc.setQueryData(second, page(gw("c")));
    qc.setQueryData(gatewayKeys.detail("o", "a"), gw("a"));
    qc.setQueryData(gatewayKeys.summary("o"), { total: 3, by_status: {}, by_health: {} });
    return { qc, first, second, later: createCoalescer(400) };
  };

  it("applies gateway.status to pages and detail, then refreshes the counts once", () => {
    const { qc, first, later } = setup();
    const ev = parseEvent("gateway.status", JSON.stringify(STATUS))!;
    applyFleetEvent(qc, "o", ev, later);
    applyFleetEvent(qc, "o", ev, later);
    expect(qc.getQueryData<GatewayPage>(first)!.items[0]!.health.status).toBe("healthy");
    expect(qc.getQueryData<Gateway>(gatewayKeys.detail("o", "a"))!.status).toBe("active");
    expect(qc.getQueryState(gatewayKeys.summary("o"))!.isInvalidated).toBe(false);
    vi.advanceTimersByTime(SLOW_MS);
    expect(qc.getQueryState(gatewayKeys.summary("o"))!.isInvalidated).toBe(true);
  });

  it("refetches the health history of the fleet and of that gateway, throttled", () => {
    const { qc, later } = setup();
    const fleet = healthHistoryKeys.fleet("o", "24h");
    const mine = healthHistoryKeys.gateway("o", "a", 86_400);
    const other = healthHistoryKeys.gateway("o", "b", 86_400);
    for (const key of [fleet, mine, other]) qc.setQueryData(key, { items: [] });
    const ev = parseEvent("gateway.status", JSON.stringify(STATUS))!;
    applyFleetEvent(qc, "o", ev, later);
    applyFleetEvent(qc, "o", ev, later);
    vi.advanceTimersByTime(HISTORY_MS - 1);
    expect(qc.getQueryState(fleet)!.isInvalidated).toBe(false);
    vi.advanceTimersByTime(1);
    expect(qc.getQueryState(fleet)!.isInvalidated).toBe(true);
    expect(qc.getQueryState(mine)!.isInvalidated).toBe(true);
    expect(qc.getQueryState(other)!.isInvalidated).toBe(false);
  });

  it("refetches first pages (slowly) when the changed gateway is on no cached page", () => {
    const { qc, first, second, later } = setup();
    applyFleetEvent(qc, "o", parseEvent("gateway.status", JSON.stringify({ ...STATUS, gateway_id: "a" }))!, later);
    vi.advanceTimersByTime(SLOW_MS);
    expect(qc.getQueryState(first)!.isInvalidated).toBe(false);
    applyFleetEvent(qc, "o", parseEvent("gateway.status", JSON.stringify({ ...STATUS, gateway_id: "zz" }))!, later);
    vi.advanceTimersByTime(SLOW_MS - 1);
    expect(qc.getQueryState(first)!.isInvalidated).toBe(false);
    vi.advanceTimersByTime(1);
    expect(qc.getQueryState(first)!.isInvalidated).toBe(true);
    expect(qc.getQueryState(second)!.isInvalidated).toBe(false);
  });

  it("refetches only first pages on gateway.registered", () => {
    const { qc, first, second, later } = setup();
    applyFleetEvent(qc, "o", parseEvent("gateway.registered", '{"gateway_id":"n","created":true}')!, later);
    vi.advanceTimersByTime(400);
    expect(qc.getQueryState(first)!.isInvalidated).toBe(true);
    expect(qc.getQueryState(second)!.isInvalidated).toBe(false);
  });

  it("drops a deleted gateway everywhere", () => {
    const { qc, first, later } = setup();
    applyFleetEvent(qc, "o", parseEvent("gateway.deleted", '{"gateway_id":"a"}')!, later);
    expect(qc.getQueryData<GatewayPage>(first)!.items.map((g) => g.id)).toEqual(["b"]);
    expect(qc.getQueryData(gatewayKeys.detail("o", "a"))).toBeUndefined();
  });

  it("invalidates the gateways a config.changed names", () => {
    const { qc, later } = setup();
    applyFleetEvent(qc, "o", parseEvent("config.changed", '{"gateway_ids":["a"]}')!, later);
    expect(qc.getQueryState(gatewayKeys.detail("o", "a"))!.isInvalidated).toBe(true);
  });

  it("ignores unknown types and bad JSON", () => {
    expect(parseEvent("something.else", "{}")).toBeNull();
    expect(parseEvent("gateway.status", "{not json")).toBeNull();
  });
});
