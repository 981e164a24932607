import type { HealthNode } from "../lib/pipeline";

interface Row {
  name: string;
  depth: number;
  node: HealthNode;
}

function flatten(node: HealthNode, depth = 0, out: Row[] = []): Row[] {
  for (const [name, child] of Object.entries(node.components ?? {})) {
    out.push({ name, depth, node: child });
    flatten(child, depth + 1, out);
  }
  return out;
}

/** The OpAMP agent's own health report: overall, then each pipeline and component. */
export function ComponentHealthList({ health }: { health: HealthNode }) {
  const rows = flatten(health);
  return (
    <section className="card" aria-labelledby="component-health-title">
      <header className="card__header">
        <h2 id="component-health-title" className="card__title">
          Component health
        </h2>
        <span className={`badge badge--${health.healthy ? "good" : "bad"}`}>{health.healthy ? "healthy" : "unhealthy"}</span>
        {health.status && <span className="muted">{health.status}</span>}
      </header>
      {health.last_error && <p className="notice notice--error">{health.last_error}</p>}
      {rows.length === 0 ? (
        <p className="muted">The agent reports no per-component health.</p>
      ) : (
        <ul className="tree">
          {rows.map((r) => (
            <li key={`${r.depth}:${r.name}`} style={{ paddingLeft: `${r.depth * 16}px` }} className="tree__row">
              <span className={`health health--${r.node.healthy ? "good" : "bad"}`}>
                <span className="health__dot" aria-hidden="true" />
              </span>
              <span className="mono">{r.name}</span>
              <span className="muted">{r.node.healthy ? r.node.status || "ok" : r.node.last_error || r.node.status || "unhealthy"}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
