import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { ErrorState } from "@/components/States";
import { usePollInterval } from "@/lib/live-state";
import { formatTimestamp } from "@/lib/time";
import { FLEET_RANGES, healthHistoryQueries, type FleetRange } from "../api/healthHistory";
import { HEALTH_ORDER, describePoint, stackBars, type FleetPoint } from "../lib/healthHistory";
import "./health-history.css";

const WIDTH = 600;
const HEIGHT = 72;

const shortTime = (iso: string) => new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });

/** The fleet's health over the last hour or day: stacked bars, one per bucket (~110 px tall). */
export function FleetHealthChart({ orgId }: { orgId: string }) {
  const [range, setRange] = useState<FleetRange>("24h");
  const poll = usePollInterval();
  const history = useQuery({ ...healthHistoryQueries.fleet(orgId, range), refetchInterval: poll });
  const points: FleetPoint[] = history.data?.points ?? [];
  const hasData = points.some((p) => HEALTH_ORDER.some((h) => p[h] > 0));
  const latest = points[points.length - 1];
  const label = hasData ? `${describePoint(latest)} (last ${FLEET_RANGES[range].label})` : "No health history yet";
  const bars = stackBars(points, WIDTH, HEIGHT);

  return (
    <section className="hchart" aria-labelledby="hchart-title">
      <div className="hchart__head">
        <h2 id="hchart-title" className="hchart__title">
          Health over the last {FLEET_RANGES[range].label}
        </h2>
        <span className="hchart__legend" aria-hidden="true">
          {HEALTH_ORDER.map((h) => (
            <span key={h}>
              <span className={`hchart__key hfill--${h}`} />
              {h}
            </span>
          ))}
        </span>
        <span className="hchart__ranges" role="group" aria-label="Time range">
          {(Object.keys(FLEET_RANGES) as FleetRange[]).map((r) => (
            <button
              key={r}
              type="button"
              className="btn btn--small hchart__range"
              aria-pressed={range === r}
              onClick={() => setRange(r)}
            >
              {FLEET_RANGES[r].label}
            </button>
          ))}
        </span>
      </div>
      {history.isError ? (
        <ErrorState error={history.error} onRetry={() => void history.refetch()} />
      ) : history.isPending ? (
        <div className="hchart__empty" aria-busy="true">
          Loading health history…
        </div>
      ) : !hasData ? (
        <div className="hchart__empty" role="status">
          No health history yet: it appears once agents register.
        </div>
      ) : (
        <>
          <svg
            className="hchart__svg"
            role="img"
            aria-label={label}
            viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
            preserveAspectRatio="none"
          >
            {bars.map((bar, i) => {
              const p = points[i];
              if (!p) return null;
              return (
                <g key={p.start}>
                  <title>
                    {`${formatTimestamp(p.end)}: ${HEALTH_ORDER.map((h) => `${p[h]} ${h}`).join(", ")}`}
                  </title>
                  {bar.rects.map((r) => (
                    <rect key={r.health} className={`hfill--${r.health}`} x={bar.x} y={r.y} width={bar.width} height={r.height} />
                  ))}
                </g>
              );
            })}
          </svg>
          <div className="hchart__axis" aria-hidden="true">
            <span>{points[0] ? shortTime(points[0].start) : ""}</span>
            <span>now</span>
          </div>
          <table className="sr-only">
            <caption>Fleet health per interval (counts at its end)</caption>
            <thead>
              <tr>
                <th scope="col">until</th>
                {HEALTH_ORDER.map((h) => (
                  <th key={h} scope="col">
                    {h}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {points.map((p) => (
                <tr key={p.start}>
                  <th scope="row">{formatTimestamp(p.end)}</th>
                  {HEALTH_ORDER.map((h) => (
                    <td key={h}>{p[h]}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
