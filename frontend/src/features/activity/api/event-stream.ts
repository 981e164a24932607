/**
 * Subscribes to `GET /api/v1/events?org_id=` with EventSource (the session cookie goes along).
 * Reports "live" once open and "down" on any error; EventSource retries by itself while the
 * connection merely dropped, and when the browser gave up (readyState CLOSED: an HTTP error, or
 * no EventSource at all) we reconnect after a growing delay. On every re-open `onReconnect`
 * runs, because events were missed meanwhile.
 */
import { EVENT_TYPES, parseEvent, type FleetEvent } from "@/lib/events";
import type { LiveState } from "@/lib/live-state";

export interface StreamHandlers {
  onEvent: (event: FleetEvent) => void;
  onState: (state: LiveState) => void;
  onReconnect: () => void;
}

export function connectEvents(orgId: string, handlers: StreamHandlers): () => void {
  if (typeof EventSource === "undefined") {
    handlers.onState("down");
    return () => undefined;
  }
  let source: EventSource | null = null;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let delay = 2_000;
  let opened = false;
  let closed = false;

  const open = () => {
    source = new EventSource(`/api/v1/events?org_id=${encodeURIComponent(orgId)}`, { withCredentials: true });
    source.onopen = () => {
      delay = 2_000;
      handlers.onState("live");
      if (opened) handlers.onReconnect();
      opened = true;
    };
    source.onerror = () => {
      handlers.onState("down");
      if (source && source.readyState === EventSource.CLOSED && !closed) {
        source.close();
        retry = setTimeout(open, delay);
        delay = Math.min(delay * 2, 60_000);
      }
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (msg) => {
        const event = parseEvent(type, (msg as MessageEvent<string>).data);
        if (event) handlers.onEvent(event);
      });
    }
  };
  open();
  return () => {
    closed = true;
    if (retry !== undefined) clearTimeout(retry);
    source?.close();
  };
}
