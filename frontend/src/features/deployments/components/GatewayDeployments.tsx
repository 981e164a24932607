import { useQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { RelativeTime } from "@/components/RelativeTime";
import { ErrorState, Skeleton } from "@/components/States";
import { usePollInterval } from "@/lib/live-state";
import { deploymentQueries } from "../api/deployments";
import { DeploymentStateBadge, TargetStateBadge } from "./DeploymentBits";

/** The deployments that touched one agent, newest first, with the agent's own state in each. */
export function GatewayDeployments({ orgId, gatewayId }: { orgId: string; gatewayId: string }) {
  const poll = usePollInterval();
  const list = useQuery({ ...deploymentQueries.ofGateway(orgId, gatewayId), refetchInterval: poll });
  return (
    <section className="card card--flush" aria-labelledby="gw-deployments-title">
      <header className="card__header card__header--padded">
        <h2 id="gw-deployments-title" className="card__title">
          Deployments
        </h2>
      </header>
      {list.isPending ? (
        <Skeleton rows={3} columns={5} />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => void list.refetch()} />
      ) : list.data.items.length === 0 ? (
        <p className="card__footer muted">No deployment has touched this agent yet; it runs the base configuration.</p>
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="Deployments of this agent">
            <thead>
              <tr>
                <th>Configuration</th>
                <th>Deployment</th>
                <th>This agent</th>
                <th>Agent's message</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map(({ deployment: d, state, error_message, updated_at }) => (
                <tr key={d.id}>
                  <td className="table__name">
                    <Link to={`/orgs/${orgId}/deployments/${d.id}`}>
                      {d.config_name ? `${d.config_name} v${d.version ?? "?"}` : d.rollback_of ? "Rollback" : "Deployment"}
                    </Link>
                  </td>
                  <td>
                    <DeploymentStateBadge state={d.state} />
                  </td>
                  <td>
                    <TargetStateBadge state={state} />
                  </td>
                  <td className={error_message ? "text-bad" : "muted"}>{error_message ?? "—"}</td>
                  <td>
                    <RelativeTime iso={updated_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
