/**
 * Deployments: query keys, queries and mutations (`/api/v1/deployments`, its `/gateways` and
 * the steering actions), and the deployments that touched one gateway
 * (`/api/v1/gateways/{id}/deployments`). Live `deployment.progress` events invalidate these
 * keys (see ./live).
 */
import { keepPreviousData, queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas } from "@/lib/api-client";

export type Deployment = Schemas["DeploymentOut"];
export type DeploymentPage = Schemas["DeploymentPage"];
export type DeploymentCreate = Schemas["DeploymentCreate"];
export type DeploymentTarget = Schemas["DeploymentTargetOut"];
export type DeploymentTargetPage = Schemas["DeploymentTargetPage"];
export type GatewayDeploymentPage = Schemas["GatewayDeploymentPage"];
export type DeploymentState = Schemas["DeploymentState"];
export type SteerAction = "pause" | "resume" | "cancel" | "rollback";

export interface DeploymentFilters {
  config_id?: string;
  state?: string;
}

export const TARGETS_PAGE = 100;

export const deploymentKeys = {
  all: (orgId: string) => ["orgs", orgId, "deployments"] as const,
  lists: (orgId: string) => [...deploymentKeys.all(orgId), "list"] as const,
  list: (orgId: string, filters: DeploymentFilters, cursor: string | null) =>
    [...deploymentKeys.lists(orgId), { ...filters, cursor }] as const,
  detail: (orgId: string, id: string) => [...deploymentKeys.all(orgId), "detail", id] as const,
  targets: (orgId: string, id: string) => [...deploymentKeys.all(orgId), "targets", id] as const,
  targetPage: (orgId: string, id: string, state: string | undefined, cursor: string | null) =>
    [...deploymentKeys.targets(orgId, id), { state, cursor }] as const,
  ofGateway: (orgId: string, gatewayId: string) => [...deploymentKeys.all(orgId), "of-gateway", gatewayId] as const,
};

export const deploymentQueries = {
  list: (orgId: string, filters: DeploymentFilters = {}, cursor: string | null = null, limit = 50) =>
    queryOptions({
      queryKey: [...deploymentKeys.list(orgId, filters, cursor), limit] as const,
      queryFn: ({ signal }) =>
        api.get<DeploymentPage>("/api/v1/deployments", { org_id: orgId, ...filters, cursor, limit }, signal),
      placeholderData: keepPreviousData,
    }),
  detail: (orgId: string, id: string) =>
    queryOptions({
      queryKey: deploymentKeys.detail(orgId, id),
      queryFn: ({ signal }) => api.get<Deployment>(`/api/v1/deployments/${id}`, { org_id: orgId }, signal),
    }),
  targets: (orgId: string, id: string, state: string | undefined, cursor: string | null) =>
    queryOptions({
      queryKey: deploymentKeys.targetPage(orgId, id, state, cursor),
      queryFn: ({ signal }) =>
        api.get<DeploymentTargetPage>(
          `/api/v1/deployments/${id}/gateways`,
          { org_id: orgId, state, cursor, limit: TARGETS_PAGE },
          signal,
        ),
      placeholderData: keepPreviousData,
    }),
  ofGateway: (orgId: string, gatewayId: string) =>
    queryOptions({
      queryKey: deploymentKeys.ofGateway(orgId, gatewayId),
      queryFn: ({ signal }) =>
        api.get<GatewayDeploymentPage>(`/api/v1/gateways/${gatewayId}/deployments`, { org_id: orgId, limit: 20 }, signal),
    }),
};

export function useCreateDeployment(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: DeploymentCreate) => api.post<Deployment>("/api/v1/deployments", body, { org_id: orgId }),
    onSuccess: (created) => {
      qc.setQueryData(deploymentKeys.detail(orgId, created.id), created);
      void qc.invalidateQueries({ queryKey: deploymentKeys.lists(orgId) });
      void qc.invalidateQueries({ queryKey: ["orgs", orgId, "gateways"] });
    },
  });
}

/** Pause, resume, cancel or roll back; answers the deployment (a rollback: the new one). */
export function useSteerDeployment(orgId: string, id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (action: SteerAction) => api.post<Deployment>(`/api/v1/deployments/${id}/${action}`, undefined, { org_id: orgId }),
    onSuccess: (answer) => {
      qc.setQueryData(deploymentKeys.detail(orgId, answer.id), answer);
      void qc.invalidateQueries({ queryKey: deploymentKeys.detail(orgId, id) });
      void qc.invalidateQueries({ queryKey: deploymentKeys.targets(orgId, id) });
      void qc.invalidateQueries({ queryKey: deploymentKeys.lists(orgId) });
    },
  });
}
