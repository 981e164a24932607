import { useSyncExternalStore } from "react";
import { gatewayIdOf, type FleetEvent } from "@/lib/events";

/** One line of the activity feed. Kept in memory only, newest first, at most {@link FEED_LIMIT}. */
export interface ActivityEntry {
  id: number;
  at: number;
  gatewayId: string | null;
  event: FleetEvent;
  /** The gateway's name when the event arrived (the feed prefers the current one). */
  name: string | null;
}

export interface DescribedEvent {
  type: FleetEvent["type"];
  title: string;
  detail: string;
  tone: "good" | "warn" | "bad" | "info";
}

export const FEED_LIMIT = 200;

/** The feed's wording for an event; `name` is the gateway's name when the page knows it. */
export function describeEvent(event: FleetEvent, name: string | null): DescribedEvent {
  const data = event.data as Record<string, unknown>;
  const who = (typeof data.name === "string" && data.name) || name || "A gateway";
  switch (event.type) {
    case "gateway.registered":
      return {
        type: event.type,
        title: data.created === false ? `${who} registered again` : `${who} registered`,
        detail: "",
        tone: "info",
      };
    case "gateway.status": {
      const health = String(data.health ?? data.status ?? "");
      const tone = health === "healthy" ? "good" : health === "warning" ? "warn" : health ? "bad" : "info";
      const status = String(data.status ?? "");
      const title = status === "inactive" ? `${who} deactivated` : `${who} is ${health || status}`;
      return { type: event.type, title, detail: status ? `status ${status}` : "", tone };
    }
    case "gateway.deleted":
      return { type: event.type, title: `${who} deleted`, detail: "", tone: "bad" };
    case "gateway.changed":
      return { type: event.type, title: `${who} was edited`, detail: "name or labels", tone: "info" };
    case "config.changed": {
      const many = Array.isArray(data.gateway_ids) ? data.gateway_ids.length : 0;
      const target = many > 1 ? `${many} gateways` : who === "A gateway" ? "a gateway" : who;
      return { type: event.type, title: `New configuration for ${target}`, detail: "", tone: "info" };
    }
    case "deployment.progress":
      return { type: event.type, title: "A deployment progressed", detail: "", tone: "info" };
    case "overflow":
      return { type: event.type, title: "Missed some events; refreshed", detail: "", tone: "warn" };
  }
}

let entries: ActivityEntry[] = [];
let nextId = 1;
const listeners = new Set<() => void>();

export const activityFeed = {
  push(event: FleetEvent, name: string | null): void {
    entries = [{ id: nextId++, at: event.receivedAt, gatewayId: gatewayIdOf(event), event, name }, ...entries].slice(
      0,
      FEED_LIMIT,
    );
    for (const l of listeners) l();
  },
  clear(): void {
    entries = [];
    for (const l of listeners) l();
  },
  get: (): ActivityEntry[] => entries,
  subscribe(listener: () => void): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};

export function useActivity(): ActivityEntry[] {
  return useSyncExternalStore(activityFeed.subscribe, activityFeed.get, activityFeed.get);
}
