/**
 * The live events of `GET /api/v1/events` (Server-Sent Events; the event name is the type,
 * the data is JSON). Unknown fields are kept; unknown types are ignored by the consumers.
 */
export const EVENT_TYPES = [
  "gateway.registered",
  "gateway.status",
  "gateway.deleted",
  "gateway.changed",
  "config.changed",
  "deployment.progress",
  "overflow",
] as const;
export type FleetEventType = (typeof EVENT_TYPES)[number];

export interface GatewayStatusData {
  gateway_id: string;
  status?: string;
  health?: string;
  health_score?: number;
  last_seen?: string | null;
  name?: string;
  [key: string]: unknown;
}

export interface FleetEvent {
  type: FleetEventType;
  data: GatewayStatusData | Record<string, unknown>;
  /** When the browser received it (ms since epoch). */
  receivedAt: number;
}

/** The one gateway an event is about (`config.changed` may name several: `gateway_ids`). */
export function gatewayIdOf(event: FleetEvent): string | null {
  const data = event.data as { gateway_id?: unknown; gateway_ids?: unknown };
  if (typeof data.gateway_id === "string") return data.gateway_id;
  if (Array.isArray(data.gateway_ids) && data.gateway_ids.length === 1 && typeof data.gateway_ids[0] === "string") {
    return data.gateway_ids[0];
  }
  return null;
}

export function parseEvent(type: string, raw: string, receivedAt = Date.now()): FleetEvent | null {
  if (!(EVENT_TYPES as readonly string[]).includes(type)) return null;
  let data: unknown = {};
  if (raw) {
    try {
      data = JSON.parse(raw);
    } catch {
      return null;
    }
  }
  if (!data || typeof data !== "object" || Array.isArray(data)) data = {};
  return { type: type as FleetEventType, data: data as Record<string, unknown>, receivedAt };
}
