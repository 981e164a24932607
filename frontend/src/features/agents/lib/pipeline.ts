/**
 * Builds the pipeline graph of a collector configuration: for each `service.pipelines` entry,
 * its receivers -> processors -> exporters, each component marked as defined (present in its
 * top-level section), a connector, and healthy/unhealthy when the agent's component health
 * (OpAMP ComponentHealth, as the server stores it) says so.
 */
import { parse } from "yaml";

export type ComponentKind = "receiver" | "processor" | "exporter" | "connector";

export interface GraphComponent {
  id: string;
  kind: ComponentKind;
  defined: boolean;
  health: "healthy" | "unhealthy" | "unknown";
  error?: string;
}

export interface PipelineGraph {
  name: string;
  signal: string;
  receivers: GraphComponent[];
  processors: GraphComponent[];
  exporters: GraphComponent[];
}

export type GraphResult = { ok: true; pipelines: PipelineGraph[] } | { ok: false; error: string };

export interface HealthNode {
  healthy?: boolean;
  status?: string;
  last_error?: string;
  components?: Record<string, HealthNode>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function ids(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/**
 * The collector reports health as pipeline:<name> -> <kind>:<id>; some agents report the
 * components flat. Pipeline-specific entries win over flat ones.
 */
function lookupHealth(
  health: HealthNode | null | undefined,
  pipeline: string,
  kind: ComponentKind,
  id: string,
): Pick<GraphComponent, "health" | "error"> {
  if (!health?.components) return { health: "unknown" };
  const keys = [`${kind}:${id}`, ...(kind === "connector" ? [`exporter:${id}`, `receiver:${id}`] : [])];
  const scoped = health.components[`pipeline:${pipeline}`]?.components;
  for (const source of [scoped, health.components]) {
    if (!source) continue;
    for (const key of keys) {
      const node = source[key];
      if (node && typeof node.healthy === "boolean") {
        return node.healthy
          ? { health: "healthy" }
          : { health: "unhealthy", error: node.last_error || node.status || undefined };
      }
    }
  }
  return { health: "unknown" };
}

export function buildPipelineGraph(yamlText: string, health?: HealthNode | null): GraphResult {
  let doc: unknown;
  try {
    doc = parse(yamlText);
  } catch (error) {
    return { ok: false, error: `The configuration is not valid YAML: ${(error as Error).message.split("\n")[0]}` };
  }
  if (!isRecord(doc)) return { ok: false, error: "The configuration is not a YAML mapping" };
  const service = isRecord(doc.service) ? doc.service : {};
  const pipelines = isRecord(service.pipelines) ? service.pipelines : {};
  const section = (name: string) => (isRecord(doc[name]) ? (doc[name] as Record<string, unknown>) : {});
  const connectors = section("connectors");
  const make = (pipeline: string, kind: Exclude<ComponentKind, "connector">, id: string): GraphComponent => {
    const isConnector = kind !== "processor" && id in connectors;
    const realKind: ComponentKind = isConnector ? "connector" : kind;
    const defined = isConnector || id in section(`${kind}s`);
    return { id, kind: realKind, defined, ...lookupHealth(health, pipeline, realKind, id) };
  };
  const result: PipelineGraph[] = Object.entries(pipelines).map(([name, raw]) => {
    const spec = isRecord(raw) ? raw : {};
    return {
      name,
      signal: name.split("/")[0] ?? name,
      receivers: ids(spec.receivers).map((id) => make(name, "receiver", id)),
      processors: ids(spec.processors).map((id) => make(name, "processor", id)),
      exporters: ids(spec.exporters).map((id) => make(name, "exporter", id)),
    };
  });
  return { ok: true, pipelines: result };
}
