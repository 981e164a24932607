/**
 * `deployment.progress` (ids only): the deployment's page and its gateways are refetched, and
 * the lists, coalesced (a rollout of 10k gateways reports in bursts; one refetch per window).
 */
import type { QueryClient } from "@tanstack/react-query";
import type { Coalescer } from "@/lib/coalesce";
import type { FleetEvent } from "@/lib/events";
import { deploymentKeys } from "./deployments";

export const PROGRESS_MS = 500;

export function deploymentIdOf(event: FleetEvent): string | null {
  const id = (event.data as { deployment_id?: unknown }).deployment_id;
  return typeof id === "string" ? id : null;
}

export function applyDeploymentEvent(qc: QueryClient, orgId: string, event: FleetEvent, later: Coalescer): void {
  if (event.type === "overflow") {
    void qc.invalidateQueries({ queryKey: deploymentKeys.all(orgId) });
    return;
  }
  if (event.type !== "deployment.progress") return;
  const id = deploymentIdOf(event);
  if (id) {
    later.schedule(
      `deployment:${orgId}:${id}`,
      () => {
        void qc.invalidateQueries({ queryKey: deploymentKeys.detail(orgId, id) });
        void qc.invalidateQueries({ queryKey: deploymentKeys.targets(orgId, id) });
      },
      PROGRESS_MS,
    );
  }
  later.schedule(
    `deployments:${orgId}`,
    () => {
      void qc.invalidateQueries({ queryKey: deploymentKeys.lists(orgId) });
      void qc.invalidateQueries({ queryKey: [...deploymentKeys.all(orgId), "of-gateway"] });
    },
    2_000,
  );
}
