/** Registration tokens: list, create (the token is in the answer, once), revoke. */
import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas } from "@/lib/api-client";

export type RegistrationToken = Schemas["RegistrationTokenOut"];
export type CreatedToken = Schemas["RegistrationTokenCreated"];
export type TokenCreate = Schemas["RegistrationTokenCreate"];

export const tokenKeys = { list: (orgId: string) => ["orgs", orgId, "registration-tokens"] as const };

export const tokenQueries = {
  list: (orgId: string) =>
    queryOptions({
      queryKey: tokenKeys.list(orgId),
      queryFn: ({ signal }) => api.get<RegistrationToken[]>("/api/v1/registration-tokens", { org_id: orgId }, signal),
    }),
};

export function useCreateToken(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: TokenCreate) => api.post<CreatedToken>("/api/v1/registration-tokens", body, { org_id: orgId }),
    onSuccess: () => qc.invalidateQueries({ queryKey: tokenKeys.list(orgId) }),
  });
}

export function useRevokeToken(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/api/v1/registration-tokens/${id}`, { org_id: orgId }),
    onSuccess: () => qc.invalidateQueries({ queryKey: tokenKeys.list(orgId) }),
  });
}
