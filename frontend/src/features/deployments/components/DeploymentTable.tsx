import { Link } from "react-router";
import { RelativeTime } from "@/components/RelativeTime";
import type { Deployment } from "../api/deployments";
import { describeStrategy, describeTarget } from "../lib/deploy";
import { DeploymentStateBadge, RolloutBar } from "./DeploymentBits";

/** Deployments, newest first: what, to whom, how, where it stands. */
export function DeploymentTable({ orgId, items, label }: { orgId: string; items: Deployment[]; label: string }) {
  return (
    <div className="table-wrap">
      <table className="table" aria-label={label}>
        <thead>
          <tr>
            <th>Configuration</th>
            <th>Target</th>
            <th>Strategy</th>
            <th>State</th>
            <th>Progress</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {items.map((d) => (
            <tr key={d.id}>
              <td className="table__name">
                <Link to={`/orgs/${orgId}/deployments/${d.id}`}>
                  {d.config_name ? `${d.config_name} v${d.version ?? "?"}` : d.rollback_of ? "Rollback" : "Deployment"}
                </Link>
                {d.rollback_of && <span className="table__sub">rollback</span>}
              </td>
              <td className="mono table__truncate" title={describeTarget(d.target)}>
                {describeTarget(d.target)}
              </td>
              <td>{describeStrategy(d.strategy)}</td>
              <td>
                <DeploymentStateBadge state={d.state} />
              </td>
              <td>
                <RolloutBar counts={d.counts} compact />
              </td>
              <td>
                <RelativeTime iso={d.created_at} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
