import { useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { connectEvents } from "@/features/activity/api/event-stream";
import { activityFeed } from "@/features/activity/api/feed";
import { applyFleetEvent, cachedGatewayName } from "@/features/agents/api/live";
import { gatewayKeys } from "@/features/agents/api/gateways";
import { deploymentKeys } from "@/features/deployments/api/deployments";
import { applyDeploymentEvent } from "@/features/deployments/api/live";
import { createCoalescer } from "@/lib/coalesce";
import { gatewayIdOf } from "@/lib/events";
import { setLiveState } from "@/lib/live-state";

/**
 * Keeps the organisation's pages live: every event goes to the query cache (agents) and to the
 * activity feed. While the stream is down, queries poll (see lib/live-state).
 */
export function useLiveEvents(orgId: string): void {
  const qc = useQueryClient();
  useEffect(() => {
    const later = createCoalescer(400);
    activityFeed.clear();
    setLiveState("connecting");
    const close = connectEvents(orgId, {
      onEvent: (event) => {
        const id = gatewayIdOf(event);
        const name = id ? cachedGatewayName(qc, orgId, id) : null;
        applyFleetEvent(qc, orgId, event, later);
        applyDeploymentEvent(qc, orgId, event, later);
        activityFeed.push(event, name);
      },
      onState: setLiveState,
      onReconnect: () => {
        void qc.invalidateQueries({ queryKey: gatewayKeys.all(orgId) });
        void qc.invalidateQueries({ queryKey: deploymentKeys.all(orgId) });
      },
    });
    return () => {
      close();
      later.cancelAll();
      setLiveState("connecting");
    };
  }, [orgId, qc]);
}
