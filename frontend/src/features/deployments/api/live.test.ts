import { QueryClient } from "@tanstack/react-query";
import { createCoalescer } from "@/lib/coalesce";
import { parseEvent } from "@/lib/events";
import { deploymentKeys } from "./deployments";
import { applyDeploymentEvent, PROGRESS_MS } from "./live";

describe("applyDeploymentEvent", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("refetches the deployment and its agents once per burst, and the lists", () => {
    const qc = new QueryClient();
    const later = createCoalescer(400);
    for (const key of [
      deploymentKeys.detail("o", "d1"),
      deploymentKeys.targetPage("o", "d1", undefined, null),
      deploymentKeys.detail("o", "d2"),
      [...deploymentKeys.list("o", {}, null), 50],
    ]) {
      qc.setQueryData(key, { any: true });
    }
    const event = parseEvent("deployment.progress", JSON.stringify({ deployment_id: "d1", org_id: "o" }))!;
    for (let i = 0; i < 5; i++) applyDeploymentEvent(qc, "o", event, later);
    const stale = () =>
      qc
        .getQueryCache()
        .getAll()
        .filter((q) => q.state.isInvalidated)
        .map((q) => JSON.stringify(q.queryKey));
    expect(stale()).toEqual([]);
    vi.advanceTimersByTime(PROGRESS_MS);
    expect(stale().sort()).toEqual(
      [JSON.stringify(deploymentKeys.detail("o", "d1")), JSON.stringify(deploymentKeys.targetPage("o", "d1", undefined, null))].sort(),
    );
    vi.advanceTimersByTime(2_000);
    expect(stale()).toContain(JSON.stringify([...deploymentKeys.list("o", {}, null), 50]));
    expect(stale()).not.toContain(JSON.stringify(deploymentKeys.detail("o", "d2")));
  });

  it("ignores other events", () => {
    const qc = new QueryClient();
    const later = createCoalescer(400);
    qc.setQueryData(deploymentKeys.detail("o", "d1"), {});
    applyDeploymentEvent(qc, "o", parseEvent("gateway.changed", JSON.stringify({ gateway_id: "g" }))!, later);
    vi.advanceTimersByTime(5_000);
    expect(qc.getQueryState(deploymentKeys.detail("o", "d1"))?.isInvalidated).toBe(false);
  });
});
