import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { Schemas } from "@/lib/api-client";
import { AgentConfigViewer, hasDrift } from "./AgentConfigViewer";
import { HealthSummaryBar } from "./HealthSummaryBar";
import { PipelineGraph } from "./PipelineGraph";

const config = (desired: string, effective?: string): Schemas["ConfigOut"] => ({
  config_yaml: desired,
  config_version: 3,
  deployment_id: null,
  last_updated: null,
  source: "remote",
  config_hash: "abcdef0123456789",
  applied_config_version: 3,
  remote_config_status: null,
  drift: false,
  effective: effective === undefined ? null : { config_yaml: effective, content_type: "text/yaml", updated_at: null },
});

describe("AgentConfigViewer", () => {
  it("flags drift only when desired and effective differ in substance", () => {
    expect(hasDrift(config("a: 1\n"))).toBe(false);
    expect(hasDrift(config("a: 1\n", "a: 1  \n\n"))).toBe(false);
    expect(hasDrift(config("a: 1\n", "a: 2\n"))).toBe(true);
  });

  it("switches between desired and effective", async () => {
    render(<AgentConfigViewer config={config("desired: 1\n", "effective: 2\n")} agentName="gw" />);
    expect(screen.getByText("drift")).toBeInTheDocument();
    expect(screen.getByLabelText("Desired configuration")).toHaveTextContent("desired: 1");
    await userEvent.click(screen.getByRole("tab", { name: "Effective" }));
    expect(screen.getByLabelText("Effective configuration")).toHaveTextContent("effective: 2");
    await userEvent.click(screen.getByRole("tab", { name: "Changes" }));
    const changes = screen.getByLabelText("Changes from desired to effective");
    expect(changes).toHaveTextContent("added: effective: 2");
    expect(changes).toHaveTextContent("removed: desired: 1");
    expect(screen.queryByRole("button", { name: "Download" })).toBeNull();
  });

  it("has no tabs without an effective configuration", () => {
    render(<AgentConfigViewer config={config("a: 1\n")} agentName="gw" />);
    expect(screen.queryByRole("tab")).toBeNull();
    expect(screen.queryByText("drift")).toBeNull();
  });
});

describe("PipelineGraph", () => {
  it("draws each pipeline's stages and marks unhealthy components", () => {
    const yaml = "receivers: {otlp: {}}\nexporters: {debug: {}}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n";
    render(<PipelineGraph yaml={yaml} health={{ components: { "exporter:debug": { healthy: false, last_error: "boom" } } }} />);
    const logs = screen.getByRole("group", { name: "Pipeline logs" });
    expect(within(logs).getByRole("list", { name: "Receivers" })).toHaveTextContent("otlp");
    expect(within(logs).getByRole("list", { name: "Exporters" })).toHaveTextContent("debugunhealthy");
    expect(within(logs).queryByRole("list", { name: "Processors" })).toBeNull();
  });

  it("explains a configuration it cannot read", () => {
    render(<PipelineGraph yaml={"a: ["} />);
    expect(screen.getByText(/not valid YAML/)).toBeInTheDocument();
  });
});

describe("HealthSummaryBar", () => {
  it("shows counts as toggle filters", async () => {
    const picked: (string | undefined)[] = [];
    const summary = { total: 5, by_status: {}, by_health: { healthy: 3, warning: 1, unhealthy: 1, offline: 0 } };
    const { rerender } = render(<HealthSummaryBar summary={summary} active={undefined} onPick={(h) => picked.push(h)} />);
    expect(screen.getByRole("button", { name: /5\s*All agents/ })).toHaveAttribute("aria-pressed", "true");
    await userEvent.click(screen.getByRole("button", { name: /3\s*Healthy/ }));
    rerender(<HealthSummaryBar summary={summary} active="healthy" onPick={(h) => picked.push(h)} />);
    await userEvent.click(screen.getByRole("button", { name: /3\s*Healthy/ }));
    expect(picked).toEqual(["healthy", undefined]);
  });
});
