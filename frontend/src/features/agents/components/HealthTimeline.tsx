import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { HealthIndicator } from "@/components/HealthIndicator";
import { RelativeTime } from "@/components/RelativeTime";
import { ErrorState, Skeleton } from "@/components/States";
import { useNow } from "@/lib/clock";
import { usePollInterval } from "@/lib/live-state";
import { formatTimestamp } from "@/lib/time";
import { TIMELINE_WINDOWS_SECONDS, healthHistoryQueries } from "../api/healthHistory";
import { stripSegments } from "../lib/healthHistory";
import "./health-history.css";

const PAGE = 10;
const DAY_MS = 86_400_000;
const WINDOW_LABEL: Record<number, string> = { 86400: "24 hours", 604800: "7 days", 2592000: "30 days" };

const REASONS: Record<string, string> = {
  registered: "registered",
  connected: "connected",
  heartbeat: "contact resumed",
  disconnected: "disconnected",
  deactivated: "deactivated",
  silent: "no contact within the threshold",
  reconciled: "reconciled by the health sweep",
  migrated: "migrated",
};

/** The last 24 h as a thin strip coloured by health. */
function HealthStrip({ segments }: { segments: { health: string; start: number; end: number }[] }) {
  const summary = segments.map((s) => `${s.health} ${Math.round((s.end - s.start) * 100)}%`).join(", ");
  return (
    <>
      <svg
        className="hstrip"
        role="img"
        aria-label={segments.length ? `Last 24 hours: ${summary}` : "No health recorded in the last 24 hours"}
        viewBox="0 0 1000 10"
        preserveAspectRatio="none"
      >
        {segments.map((s) => (
          <rect
            key={s.start}
            className={`hfill--${s.health}`}
            x={s.start * 1000}
            y={0}
            width={Math.max(4, (s.end - s.start) * 1000)}
            height={10}
          >
            <title>{`${s.health}, ${Math.round((s.end - s.start) * 100)}% of the last 24 h`}</title>
          </rect>
        ))}
      </svg>
      <div className="hstrip__axis" aria-hidden="true">
        <span>24 h ago</span>
        <span>now</span>
      </div>
    </>
  );
}

/** A gateway's health transitions, newest first, with "Older" paging, above a 24 h strip. */
export function HealthTimeline({ orgId, gatewayId, current }: { orgId: string; gatewayId: string; current: string }) {
  const [windowIndex, setWindowIndex] = useState(0);
  const [shown, setShown] = useState(PAGE);
  const poll = usePollInterval();
  const windowSeconds = TIMELINE_WINDOWS_SECONDS[windowIndex] ?? TIMELINE_WINDOWS_SECONDS[0];
  const history = useQuery({ ...healthHistoryQueries.gateway(orgId, gatewayId, windowSeconds), refetchInterval: poll });
  // The strip always shows the last day, whatever window the list has widened to.
  const now = useNow();

  let body;
  if (history.isPending) body = <Skeleton rows={3} columns={3} />;
  else if (history.isError) body = <ErrorState error={history.error} onRetry={() => void history.refetch()} />;
  else {
    const items = history.data.items;
    const newestFirst = [...items].reverse();
    const visible = newestFirst.slice(0, shown);
    const moreHere = newestFirst.length > shown;
    // Nothing is older than the gateway's creation (the one transition from no health).
    const created = items[0]?.from === null && !history.data.truncated;
    const wider = !created && windowIndex < TIMELINE_WINDOWS_SECONDS.length - 1;
    const segments = stripSegments(items, now - DAY_MS, now, current);
    body = (
      <>
        <HealthStrip segments={segments} />
        {visible.length === 0 ? (
          <p className="muted">No health changes in the last {WINDOW_LABEL[windowSeconds] ?? "period"}.</p>
        ) : (
          <ol className="htimeline" aria-label="Health transitions, newest first">
            {visible.map((t, i) => (
              <li className="htimeline__item" key={`${t.at}-${i}`}>
                <span className="htimeline__change">
                  {t.from ? <HealthIndicator health={t.from} /> : <span className="muted">new</span>}
                  <span aria-label="to"> → </span>
                  <HealthIndicator health={t.to} />
                </span>
                <span className="htimeline__reason" title={t.reason ?? undefined}>{t.reason ? (REASONS[t.reason] ?? t.reason) : ""}</span>
                <span className="htimeline__time" title={formatTimestamp(t.at)}>
                  <RelativeTime iso={t.at} />
                </span>
              </li>
            ))}
          </ol>
        )}
        {history.data.truncated && (
          <p className="muted">Showing the oldest {items.length} changes of this period; the newest are not loaded.</p>
        )}
        {(moreHere || wider) && (
          <button
            type="button"
            className="btn btn--small"
            disabled={history.isFetching}
            onClick={() => {
              if (moreHere) setShown(shown + PAGE);
              else {
                setWindowIndex(windowIndex + 1);
                setShown(newestFirst.length + PAGE);
              }
            }}
          >
            Older
          </button>
        )}
      </>
    );
  }

  return (
    <section className="card" aria-labelledby="health-history-title">
      <header className="card__header">
        <h2 id="health-history-title" className="card__title">
          Health history
        </h2>
      </header>
      {body}
    </section>
  );
}
