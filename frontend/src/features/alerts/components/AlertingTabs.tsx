import { NavLink } from "react-router";
import "../alerts.css";

const TABS = [
  ["alerts", "Alerts"],
  ["alerts/rules", "Rules"],
  ["alerts/channels", "Notification channels"],
  ["alerts/silences", "Silences"],
] as const;

/** The four alerting pages, one under the other in the URL (`/alerts`, `/alerts/rules`, ...). */
export function AlertingTabs({ orgId }: { orgId: string }) {
  return (
    <nav className="alert-tabs" aria-label="Alerting">
      <div className="segmented">
        {TABS.map(([to, label]) => (
          <NavLink key={to} to={`/orgs/${orgId}/${to}`} end className="segmented__item">
            {label}
          </NavLink>
        ))}
      </div>
    </nav>
  );
}
