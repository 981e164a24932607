import { buildPipelineGraph } from "./pipeline";

const CONFIG = `
receivers:
  otlp:
    protocols: {grpc: {}}
processors:
  batch: {}
  memory_limiter: {}
exporters:
  debug: {}
  otlp/backend: {endpoint: x:4317}
connectors:
  count: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp/backend, count]
    metrics/count:
      receivers: [count]
      exporters: [debug, missing]
`;

describe("buildPipelineGraph", () => {
  it("lists each pipeline's components in order", () => {
    const graph = buildPipelineGraph(CONFIG);
    if (!graph.ok) throw new Error(graph.error);
    expect(graph.pipelines.map((p) => [p.name, p.signal])).toEqual([
      ["traces", "traces"],
      ["metrics/count", "metrics"],
    ]);
    const traces = graph.pipelines[0]!;
    expect(traces.receivers.map((c) => c.id)).toEqual(["otlp"]);
    expect(traces.processors.map((c) => c.id)).toEqual(["memory_limiter", "batch"]);
    expect(traces.exporters.map((c) => [c.id, c.kind])).toEqual([
      ["otlp/backend", "exporter"],
      ["count", "connector"],
    ]);
    const metrics = graph.pipelines[1]!;
    expect(metrics.receivers[0]).toMatchObject({ id: "count", kind: "connector", defined: true });
    expect(metrics.exporters[1]).toMatchObject({ id: "missing", defined: false, health: "unknown" });
  });

  it("marks components from the agent's component health", () => {
    const health = {
      healthy: false,
      components: {
        "pipeline:traces": {
          healthy: false,
          components: {
            "receiver:otlp": { healthy: true },
            "exporter:otlp/backend": { healthy: false, last_error: "connection refused" },
          },
        },
        "processor:batch": { healthy: true },
      },
    };
    const graph = buildPipelineGraph(CONFIG, health);
    if (!graph.ok) throw new Error(graph.error);
    const traces = graph.pipelines[0]!;
    expect(traces.receivers[0]!.health).toBe("healthy");
    expect(traces.exporters[0]).toMatchObject({ health: "unhealthy", error: "connection refused" });
    expect(traces.processors.map((p) => p.health)).toEqual(["unknown", "healthy"]);
  });

  it("explains YAML it cannot read", () => {
    expect(buildPipelineGraph("a: [")).toMatchObject({ ok: false });
    expect(buildPipelineGraph("- just a list")).toEqual({ ok: false, error: "The configuration is not a YAML mapping" });
    expect(buildPipelineGraph("receivers: {}")).toEqual({ ok: true, pipelines: [] });
  });
});
