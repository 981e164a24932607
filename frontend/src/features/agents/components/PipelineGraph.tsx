import { Fragment, useMemo } from "react";
import { buildPipelineGraph, type GraphComponent, type HealthNode } from "../lib/pipeline";

function Box({ c }: { c: GraphComponent }) {
  const state = c.health === "unhealthy" ? "bad" : c.health === "healthy" ? "good" : "plain";
  const title = [
    `${c.kind} ${c.id}`,
    c.health !== "unknown" ? c.health : null,
    c.error ?? null,
    c.defined ? null : "not defined in the configuration",
  ]
    .filter(Boolean)
    .join(" — ");
  return (
    <li className={`pg__box pg__box--${c.kind} pg__box--${state} ${c.defined ? "" : "pg__box--undefined"}`} title={title}>
      <span className="pg__kind">{c.kind}</span>
      <span className="pg__id">{c.id}</span>
      {c.health === "unhealthy" && <span className="sr-only">unhealthy</span>}
    </li>
  );
}

function Arrow() {
  return (
    <svg className="pg__arrow" width="28" height="12" viewBox="0 0 28 12" aria-hidden="true">
      <path d="M0 6h24M19 1l6 5-6 5" fill="none" stroke="currentColor" strokeWidth="1.5" />
    </svg>
  );
}

function Column({ items, label }: { items: GraphComponent[]; label: string }) {
  return (
    <ul className="pg__column" aria-label={label}>
      {items.length ? items.map((c) => <Box key={`${c.kind}:${c.id}`} c={c} />) : <li className="pg__none">none</li>}
    </ul>
  );
}

/** receivers -> processors -> exporters for each pipeline of the running configuration. */
export function PipelineGraph({ yaml, health }: { yaml: string; health?: HealthNode | null }) {
  const graph = useMemo(() => buildPipelineGraph(yaml, health), [yaml, health]);
  return (
    <section className="card" aria-labelledby="pipelines-title">
      <header className="card__header">
        <h2 id="pipelines-title" className="card__title">
          Pipelines
        </h2>
        {graph.ok && <span className="muted">{graph.pipelines.length} in the running configuration</span>}
      </header>
      {!graph.ok ? (
        <p className="notice notice--warn">{graph.error}</p>
      ) : graph.pipelines.length === 0 ? (
        <p className="muted">This configuration defines no pipelines (service.pipelines is empty).</p>
      ) : (
        <div className="pg">
          {graph.pipelines.map((p) => (
            <div className="pg__pipeline" key={p.name} role="group" aria-label={`Pipeline ${p.name}`}>
              <div className={`pg__name pg__name--${p.signal}`}>{p.name}</div>
              <div className="pg__flow">
                <Column items={p.receivers} label="Receivers" />
                <Arrow />
                {p.processors.length > 0 && (
                  <>
                    <ol className="pg__chain" aria-label="Processors">
                      {p.processors.map((c, i) => (
                        <Fragment key={`${c.id}-${i}`}>
                          {i > 0 && <Arrow />}
                          <Box c={c} />
                        </Fragment>
                      ))}
                    </ol>
                    <Arrow />
                  </>
                )}
                <Column items={p.exporters} label="Exporters" />
              </div>
            </div>
          ))}
        </div>
      )}
    </section>
  );
}
