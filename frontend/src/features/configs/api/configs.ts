/**
 * Configuration templates and their versions: query keys, queries and mutations
 * (`/api/v1/configs`, `/versions`, `/validate`). Versions never change, so a version's body is
 * cached for as long as the page lives.
 */
import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas } from "@/lib/api-client";
import type { ValidationResult } from "../lib/validation";
import { validationFromError } from "../lib/validation";

export type ConfigTemplate = Schemas["ConfigTemplateOut"];
export type VersionSummary = Schemas["VersionSummary"];
export type VersionPage = Schemas["VersionPage"];
export type ConfigVersion = Schemas["flowgate__configs__schemas__VersionOut"];
export type TemplateCreate = Schemas["ConfigCreate"];

export const configKeys = {
  all: (orgId: string) => ["orgs", orgId, "configs"] as const,
  list: (orgId: string) => [...configKeys.all(orgId), "list"] as const,
  detail: (orgId: string, id: string) => [...configKeys.all(orgId), "detail", id] as const,
  versions: (orgId: string, id: string) => [...configKeys.all(orgId), "versions", id] as const,
  version: (orgId: string, id: string, n: number) => [...configKeys.all(orgId), "version", id, n] as const,
  validate: (orgId: string, text: string) => [...configKeys.all(orgId), "validate", text] as const,
};

export const VERSIONS_PAGE = 100;

export const configQueries = {
  list: (orgId: string) =>
    queryOptions({
      queryKey: configKeys.list(orgId),
      queryFn: ({ signal }) => api.get<ConfigTemplate[]>("/api/v1/configs", { org_id: orgId }, signal),
    }),
  detail: (orgId: string, id: string) =>
    queryOptions({
      queryKey: configKeys.detail(orgId, id),
      queryFn: ({ signal }) => api.get<ConfigTemplate>(`/api/v1/configs/${id}`, { org_id: orgId }, signal),
    }),
  /** The newest {@link VERSIONS_PAGE} versions, without their bodies. */
  versions: (orgId: string, id: string) =>
    queryOptions({
      queryKey: configKeys.versions(orgId, id),
      queryFn: ({ signal }) =>
        api.get<VersionPage>(`/api/v1/configs/${id}/versions`, { org_id: orgId, limit: VERSIONS_PAGE }, signal),
    }),
  /** An older page: the versions below `before` (the previous page's `next_before`). */
  versionsBefore: (orgId: string, id: string, before: number) =>
    queryOptions({
      queryKey: [...configKeys.versions(orgId, id), { before }] as const,
      queryFn: ({ signal }) =>
        api.get<VersionPage>(`/api/v1/configs/${id}/versions`, { org_id: orgId, limit: VERSIONS_PAGE, before }, signal),
    }),
  version: (orgId: string, id: string, n: number) =>
    queryOptions({
      queryKey: configKeys.version(orgId, id, n),
      queryFn: ({ signal }) => api.get<ConfigVersion>(`/api/v1/configs/${id}/versions/${n}`, { org_id: orgId }, signal),
      staleTime: Infinity,
    }),
  /**
   * What the server says about a text (never stored): valid, or its errors with line:column.
   * A 422 is an answer here, not a failure.
   */
  validate: (orgId: string, text: string) =>
    queryOptions({
      queryKey: configKeys.validate(orgId, text),
      queryFn: async ({ signal }): Promise<ValidationResult> => {
        try {
          const ok = await api.post<Schemas["ValidationOut"]>(
            "/api/v1/configs/validate",
            { config_yaml: text },
            { org_id: orgId },
            signal,
          );
          return { valid: ok.valid, message: null, errors: ok.errors };
        } catch (error) {
          const refused = validationFromError(error);
          if (refused) return refused;
          throw error;
        }
      },
      staleTime: Infinity,
      gcTime: 60_000,
      retry: false,
    }),
};

export function useCreateTemplate(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: TemplateCreate) => api.post<ConfigTemplate>("/api/v1/configs", body, { org_id: orgId }),
    onSuccess: (created) => {
      qc.setQueryData(configKeys.detail(orgId, created.id), created);
      return qc.invalidateQueries({ queryKey: configKeys.list(orgId) });
    },
  });
}

export function useCreateVersion(orgId: string, configId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: { config_yaml: string; message?: string | null }) =>
      api.post<ConfigVersion>(`/api/v1/configs/${configId}/versions`, body, { org_id: orgId }),
    onSuccess: (version) => {
      qc.setQueryData(configKeys.version(orgId, configId, version.version), version);
      void qc.invalidateQueries({ queryKey: configKeys.detail(orgId, configId) });
      void qc.invalidateQueries({ queryKey: configKeys.list(orgId) });
      return qc.invalidateQueries({ queryKey: configKeys.versions(orgId, configId) });
    },
  });
}

export function useDeleteTemplate(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/api/v1/configs/${id}`, { org_id: orgId }),
    onSuccess: (_d, id) => {
      qc.removeQueries({ queryKey: configKeys.detail(orgId, id) });
      return qc.invalidateQueries({ queryKey: configKeys.list(orgId) });
    },
  });
}
