import { useQuery, type QueryClient } from "@tanstack/react-query";
import { lazy, Suspense } from "react";
import { createBrowserRouter, Navigate, Outlet, useParams, type RouteObject } from "react-router";
import { ErrorState, Skeleton } from "@/components/States";
import { AgentsRoute } from "@/features/agents/routes/AgentsRoute";
import { authKeys, meQuery, usePermissions } from "@/features/auth/api/session";
import { SignInRoute } from "@/features/auth/routes/SignInRoute";

// The landing page (agents) is in the main bundle; the others load on first visit (the details
// page brings the YAML parser).
const AgentDetailsRoute = lazy(() =>
  import("@/features/agents/routes/AgentDetailsRoute").then((m) => ({ default: m.AgentDetailsRoute })),
);
const TokensRoute = lazy(() => import("@/features/tokens/routes/TokensRoute").then((m) => ({ default: m.TokensRoute })));
const AdminRoute = lazy(() => import("@/features/admin/routes/AdminRoute").then((m) => ({ default: m.AdminRoute })));
// The configuration pages bring CodeMirror: loaded when first opened.
const ConfigsRoute = lazy(() => import("@/features/configs/routes/ConfigsRoute").then((m) => ({ default: m.ConfigsRoute })));
const ConfigDetailRoute = lazy(() =>
  import("@/features/configs/routes/ConfigDetailRoute").then((m) => ({ default: m.ConfigDetailRoute })),
);
const NewVersionRoute = lazy(() => import("@/features/configs/routes/NewVersionRoute").then((m) => ({ default: m.NewVersionRoute })));
const DiffRoute = lazy(() => import("@/features/configs/routes/DiffRoute").then((m) => ({ default: m.DiffRoute })));
const DeploymentsRoute = lazy(() =>
  import("@/features/deployments/routes/DeploymentsRoute").then((m) => ({ default: m.DeploymentsRoute })),
);
const DeploymentRoute = lazy(() =>
  import("@/features/deployments/routes/DeploymentRoute").then((m) => ({ default: m.DeploymentRoute })),
);
const AlertsRoute = lazy(() => import("@/features/alerts/routes/AlertsRoute").then((m) => ({ default: m.AlertsRoute })));
const RulesRoute = lazy(() => import("@/features/alerts/routes/RulesRoute").then((m) => ({ default: m.RulesRoute })));
const ChannelsRoute = lazy(() => import("@/features/alerts/routes/ChannelsRoute").then((m) => ({ default: m.ChannelsRoute })));
const SilencesRoute = lazy(() => import("@/features/alerts/routes/SilencesRoute").then((m) => ({ default: m.SilencesRoute })));
const AuditRoute = lazy(() => import("@/features/audit/routes/AuditRoute").then((m) => ({ default: m.AuditRoute })));
import { hasSessionCookie, setUnauthorizedHandler } from "@/lib/api-client";
import { AppShell } from "./AppShell";

function FullPageLoading() {
  return (
    <div className="page page--center">
      <Skeleton rows={4} columns={3} />
    </div>
  );
}

/** Children render only for a signed-in user; a 401 is handled centrally (sign-in page). */
function RequireSession() {
  const me = useQuery(meQuery);
  if (me.isPending) return <FullPageLoading />;
  if (me.isError) {
    return (
      <div className="page page--center">
        <ErrorState error={me.error} onRetry={() => void me.refetch()} />
      </div>
    );
  }
  return <Outlet />;
}

function RootRedirect() {
  const { data: me } = useQuery(meQuery);
  const first = me?.organizations[0];
  if (!first) {
    return (
      <div className="page page--center">
        <div className="empty">
          <h3 className="empty__title">You are not in any organisation yet</h3>
          <p className="empty__text">Ask an admin to add you to one.</p>
        </div>
      </div>
    );
  }
  return <Navigate to={`/orgs/${first.id}/agents`} replace />;
}

/** The org in the URL must be one of the user's; its role decides which controls exist. */
function OrgLayout() {
  const { orgId = "" } = useParams();
  const { data: me } = useQuery(meQuery);
  const perms = usePermissions(orgId);
  if (!perms.role) {
    return (
      <div className="page page--center">
        <div className="empty">
          <h3 className="empty__title">Organisation not found</h3>
          <p className="empty__text">It does not exist or you are not a member.</p>
          {me?.organizations[0] && (
            <a className="btn" href={`/orgs/${me.organizations[0].id}/agents`}>
              Go to {me.organizations[0].name}
            </a>
          )}
        </div>
      </div>
    );
  }
  return <AppShell canOperate={perms.canOperate} canAdmin={perms.canAdmin} role={perms.role} />;
}

type Page =
  | "agents"
  | "agent"
  | "tokens"
  | "admin"
  | "configs"
  | "config"
  | "new-version"
  | "diff"
  | "deployments"
  | "deployment"
  | "alerts"
  | "alert-rules"
  | "alert-channels"
  | "alert-silences"
  | "audit";

function OrgPage({ page }: { page: Page }) {
  const { orgId = "" } = useParams();
  const { data: me } = useQuery(meQuery);
  const perms = usePermissions(orgId);
  if (page === "agents") return <AgentsRoute canOperate={perms.canOperate} />;
  return (
    <Suspense fallback={<Skeleton rows={8} columns={4} />}>
      {page === "agent" && <AgentDetailsRoute canOperate={perms.canOperate} />}
      {page === "tokens" && <TokensRoute canOperate={perms.canOperate} />}
      {page === "admin" && <AdminRoute canAdmin={perms.canAdmin} currentUserId={me?.id ?? null} />}
      {page === "configs" && <ConfigsRoute canOperate={perms.canOperate} />}
      {page === "config" && <ConfigDetailRoute canOperate={perms.canOperate} />}
      {page === "new-version" && <NewVersionRoute canOperate={perms.canOperate} />}
      {page === "diff" && <DiffRoute />}
      {page === "deployments" && <DeploymentsRoute canOperate={perms.canOperate} />}
      {page === "deployment" && <DeploymentRoute canOperate={perms.canOperate} />}
      {page === "alerts" && <AlertsRoute canOperate={perms.canOperate} />}
      {page === "alert-rules" && <RulesRoute canOperate={perms.canOperate} />}
      {page === "alert-channels" && <ChannelsRoute canOperate={perms.canOperate} />}
      {page === "alert-silences" && <SilencesRoute canOperate={perms.canOperate} />}
      {page === "audit" && <AuditRoute canAdmin={perms.canAdmin} />}
    </Suspense>
  );
}

function NotFound() {
  return (
    <div className="page page--center">
      <div className="empty">
        <h3 className="empty__title">Page not found</h3>
        <a className="btn" href="/">
          Go to the agents
        </a>
      </div>
    </div>
  );
}

export const routes: RouteObject[] = [
  { path: "/sign-in", element: <SignInRoute /> },
  {
    element: <RequireSession />,
    children: [
      { index: true, element: <RootRedirect /> },
      {
        path: "orgs/:orgId",
        element: <OrgLayout />,
        children: [
          { index: true, element: <Navigate to="agents" replace /> },
          { path: "agents", element: <OrgPage page="agents" /> },
          { path: "agents/:agentId", element: <OrgPage page="agent" /> },
          { path: "tokens", element: <OrgPage page="tokens" /> },
          { path: "admin", element: <OrgPage page="admin" /> },
          { path: "configs", element: <OrgPage page="configs" /> },
          { path: "configs/:configId", element: <OrgPage page="config" /> },
          { path: "configs/:configId/new", element: <OrgPage page="new-version" /> },
          { path: "configs/:configId/diff", element: <OrgPage page="diff" /> },
          { path: "deployments", element: <OrgPage page="deployments" /> },
          { path: "deployments/:deploymentId", element: <OrgPage page="deployment" /> },
          { path: "alerts", element: <OrgPage page="alerts" /> },
          { path: "alerts/rules", element: <OrgPage page="alert-rules" /> },
          { path: "alerts/channels", element: <OrgPage page="alert-channels" /> },
          { path: "alerts/silences", element: <OrgPage page="alert-silences" /> },
          { path: "audit", element: <OrgPage page="audit" /> },
        ],
      },
      { path: "*", element: <NotFound /> },
    ],
  },
];

export function createAppRouter(queryClient: QueryClient) {
  const router = createBrowserRouter(routes);
  // The one place a 401 is handled: back to sign-in, with the server's reason when a session
  // existed (e.g. "Session expired; sign in again"), and back here after signing in.
  setUnauthorizedHandler((detail) => {
    const { pathname, search } = router.state.location;
    if (pathname === "/sign-in") return;
    const hadSession = hasSessionCookie() || queryClient.getQueryData(authKeys.me) !== undefined;
    queryClient.clear();
    const params = new URLSearchParams();
    if (hadSession) params.set("message", detail);
    const qs = params.toString();
    void router.navigate(`/sign-in${qs ? `?${qs}` : ""}`, { replace: true, state: { from: pathname + search } });
  });
  return router;
}
