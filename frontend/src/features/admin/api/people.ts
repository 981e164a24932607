/** Members of the organisation and its API keys (admin only). */
import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas } from "@/lib/api-client";

export type Member = Schemas["MemberOut"];
export type ApiKey = Schemas["ApiKeyOut"];
export type CreatedApiKey = Schemas["ApiKeyCreated"];
export type Role = Schemas["Role"];
export const ROLES: Role[] = ["viewer", "operator", "admin"];

export const adminKeys = {
  users: (orgId: string) => ["orgs", orgId, "users"] as const,
  apiKeys: (orgId: string) => ["orgs", orgId, "api-keys"] as const,
};

export const adminQueries = {
  users: (orgId: string) =>
    queryOptions({
      queryKey: adminKeys.users(orgId),
      queryFn: ({ signal }) => api.get<Member[]>("/api/v1/users", { org_id: orgId }, signal),
    }),
  apiKeys: (orgId: string) =>
    queryOptions({
      queryKey: adminKeys.apiKeys(orgId),
      queryFn: ({ signal }) => api.get<ApiKey[]>("/api/v1/api-keys", { org_id: orgId }, signal),
    }),
};

function useOrgMutation<TVars, TResult>(key: readonly unknown[], fn: (vars: TVars) => Promise<TResult>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSuccess: () => qc.invalidateQueries({ queryKey: key }) });
}

export const useInviteUser = (orgId: string) =>
  useOrgMutation(adminKeys.users(orgId), (body: Schemas["UserCreate"]) =>
    api.post<Member>("/api/v1/users", body, { org_id: orgId }),
  );

export const useChangeRole = (orgId: string) =>
  useOrgMutation(adminKeys.users(orgId), ({ id, role }: { id: string; role: Role }) =>
    api.patch<Member>(`/api/v1/users/${id}`, { role }, { org_id: orgId }),
  );

export const useRemoveUser = (orgId: string) =>
  useOrgMutation(adminKeys.users(orgId), (id: string) => api.delete(`/api/v1/users/${id}`, { org_id: orgId }));

export const useCreateApiKey = (orgId: string) =>
  useOrgMutation(adminKeys.apiKeys(orgId), (body: Schemas["ApiKeyCreate"]) =>
    api.post<CreatedApiKey>("/api/v1/api-keys", body, { org_id: orgId }),
  );

export const useRevokeApiKey = (orgId: string) =>
  useOrgMutation(adminKeys.apiKeys(orgId), (id: string) => api.delete(`/api/v1/api-keys/${id}`, { org_id: orgId }));
