import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { NavLink, Outlet, useLocation, useNavigate, useParams } from "react-router";
import { Logo } from "@/components/Logo";
import { ThemeToggle } from "@/components/ThemeToggle";
import { ActivityDrawer } from "@/features/activity/components/ActivityDrawer";
import { useActivity } from "@/features/activity/api/feed";
import { cachedGatewayName } from "@/features/agents/api/live";
import { meQuery, useSignOut, type Me } from "@/features/auth/api/session";
import { useLiveState, type LiveState } from "@/lib/live-state";
import { useLiveEvents } from "./live-events";

const LIVE_TEXT: Record<LiveState, string> = { live: "Live", connecting: "Connecting", down: "Polling every 8 s" };

function OrgSwitcher({ me, orgId }: { me: Me; orgId: string }) {
  const navigate = useNavigate();
  const location = useLocation();
  const current = me.organizations.find((o) => o.id === orgId);
  if (me.organizations.length < 2) return <span className="topbar__org">{current?.name ?? "organisation"}</span>;
  return (
    <label className="field field--inline topbar__org">
      <span className="sr-only">Organisation</span>
      <select
        value={orgId}
        onChange={(e) => {
          // Stay on the same kind of page in the other organisation (a detail page has no twin).
          const section = location.pathname.split("/")[3] ?? "agents";
          navigate(`/orgs/${e.target.value}/${section}`);
        }}
      >
        {me.organizations.map((o) => (
          <option key={o.id} value={o.id}>
            {o.name}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The signed-in frame of an organisation: navigation, org switcher, live state, activity. */
export function AppShell({ canOperate, canAdmin, role }: { canOperate: boolean; canAdmin: boolean; role: string }) {
  const { orgId = "" } = useParams();
  const { data: me } = useQuery(meQuery);
  const navigate = useNavigate();
  const signOut = useSignOut();
  const qc = useQueryClient();
  const live = useLiveState();
  const [activityOpen, setActivityOpen] = useState(false);
  const activityCount = useActivity().length;
  useLiveEvents(orgId);

  const link = (to: string, label: string) => (
    <NavLink to={`/orgs/${orgId}/${to}`} className={({ isActive }) => `nav__link ${isActive ? "is-active" : ""}`}>
      {label}
    </NavLink>
  );

  return (
    <div className="shell">
      <header className="topbar">
        <Logo />
        <nav className="nav" aria-label="Main">
          {link("agents", "Agents")}
          {link("configs", "Configurations")}
          {link("deployments", "Deployments")}
          {link("alerts", "Alerts")}
          {canOperate && link("tokens", "Registration tokens")}
          {canAdmin && link("audit", "Audit")}
          {canAdmin && link("admin", "Admin")}
        </nav>
        <span className="topbar__spacer" />
        <span className={`live live--${live}`} title={LIVE_TEXT[live]} role="status" aria-label={`Live updates: ${LIVE_TEXT[live]}`}>
          <span className="live__dot" aria-hidden="true" />
          <span className="live__text">{LIVE_TEXT[live]}</span>
        </span>
        <button type="button" className="btn btn--ghost" onClick={() => setActivityOpen(true)} aria-haspopup="dialog">
          Activity{activityCount > 0 && <span className="count-badge">{activityCount > 99 ? "99+" : activityCount}</span>}
        </button>
        {me && <OrgSwitcher me={me} orgId={orgId} />}
        <ThemeToggle />
        <span className="topbar__user" title={`${me?.email ?? ""} (${role})`}>
          <span className="topbar__email">{me?.email}</span>
          <span className="badge badge--muted">{role}</span>
        </span>
        <button
          type="button"
          className="btn btn--ghost"
          onClick={() => signOut.mutate(undefined, { onSettled: () => navigate("/sign-in", { replace: true }) })}
        >
          Sign out
        </button>
      </header>
      <main className="main" id="main">
        <Outlet />
      </main>
      <ActivityDrawer orgId={orgId} open={activityOpen} onOpenChange={setActivityOpen} liveState={live} nameOf={(id) => cachedGatewayName(qc, orgId, id)} />
    </div>
  );
}
