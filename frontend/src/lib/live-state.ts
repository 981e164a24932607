import { useSyncExternalStore } from "react";

/**
 * Whether the live event stream is connected. While it is, queries do not poll; while it is
 * down (error, not supported, not yet connected) they poll every {@link POLL_INTERVAL_MS}.
 */
export type LiveState = "connecting" | "live" | "down";

/** The fallback polling period when the event stream is not connected. */
export const POLL_INTERVAL_MS = 8_000;
/**
 * While live, a slow refresh still runs: health also changes when nothing happens (a silent
 * agent turns warning after 60 s), and the server announces status changes, not the passing of
 * time. The health rule stays the server's; the UI never recomputes it.
 */
export const LIVE_REFRESH_MS = 30_000;

let state: LiveState = "connecting";
const listeners = new Set<() => void>();

export function setLiveState(next: LiveState): void {
  if (next === state) return;
  state = next;
  for (const l of listeners) l();
}

export function getLiveState(): LiveState {
  return state;
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useLiveState(): LiveState {
  return useSyncExternalStore(subscribe, getLiveState, getLiveState);
}

/** `refetchInterval` for queries that live events keep fresh: 30 s while live, 8 s otherwise. */
export function usePollInterval(): number {
  return useLiveState() === "live" ? LIVE_REFRESH_MS : POLL_INTERVAL_MS;
}
