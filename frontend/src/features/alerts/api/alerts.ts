/**
 * Alerting: query keys, queries and mutations for alert rules (`/api/v1/alert-rules`),
 * notification channels (`/api/v1/notification-channels`, their `/test` and `/deliveries`),
 * silences (`/api/v1/silences`) and alerts (`/api/v1/alerts`, keyset-paged). Viewers read;
 * operators write (the server checks again). See docs/alerting.md.
 */
import { keepPreviousData, queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas } from "@/lib/api-client";

export type AlertRule = Schemas["AlertRuleOut"];
export type AlertRuleCreate = Schemas["AlertRuleIn"];
export type AlertRulePatch = Schemas["AlertRulePatch"];
export type RuleKind = Schemas["RuleKind"];
export type Channel = Schemas["ChannelOut"];
export type ChannelCreate = Schemas["ChannelIn"];
export type CreatedChannel = Schemas["ChannelCreated"];
export type ChannelTestResult = Schemas["ChannelTestResult"];
export type Delivery = Schemas["DeliveryOut"];
export type Alert = Schemas["AlertOut"];
export type AlertPage = Schemas["AlertPage"];
export type AlertState = Schemas["AlertState"];
export type Silence = Schemas["SilenceOut"];
export type SilenceCreate = Schemas["SilenceIn"];

export const ALERTS_PAGE = 50;

export const alertKeys = {
  all: (orgId: string) => ["orgs", orgId, "alerting"] as const,
  rules: (orgId: string) => [...alertKeys.all(orgId), "rules"] as const,
  channels: (orgId: string) => [...alertKeys.all(orgId), "channels"] as const,
  deliveries: (orgId: string, channelId: string) => [...alertKeys.all(orgId), "deliveries", channelId] as const,
  silences: (orgId: string) => [...alertKeys.all(orgId), "silences"] as const,
  alerts: (orgId: string) => [...alertKeys.all(orgId), "alerts"] as const,
  alertPage: (orgId: string, state: AlertState | undefined, cursor: string | null) =>
    [...alertKeys.alerts(orgId), { state, cursor }] as const,
};

export const alertQueries = {
  rules: (orgId: string) =>
    queryOptions({
      queryKey: alertKeys.rules(orgId),
      queryFn: ({ signal }) => api.get<AlertRule[]>("/api/v1/alert-rules", { org_id: orgId }, signal),
    }),
  channels: (orgId: string) =>
    queryOptions({
      queryKey: alertKeys.channels(orgId),
      queryFn: ({ signal }) => api.get<Channel[]>("/api/v1/notification-channels", { org_id: orgId }, signal),
    }),
  deliveries: (orgId: string, channelId: string) =>
    queryOptions({
      queryKey: alertKeys.deliveries(orgId, channelId),
      queryFn: ({ signal }) =>
        api.get<Delivery[]>(`/api/v1/notification-channels/${channelId}/deliveries`, { org_id: orgId, limit: 50 }, signal),
    }),
  silences: (orgId: string) =>
    queryOptions({
      queryKey: alertKeys.silences(orgId),
      queryFn: ({ signal }) => api.get<Silence[]>("/api/v1/silences", { org_id: orgId }, signal),
    }),
  alerts: (orgId: string, state: AlertState | undefined, cursor: string | null) =>
    queryOptions({
      queryKey: alertKeys.alertPage(orgId, state, cursor),
      queryFn: ({ signal }) =>
        api.get<AlertPage>("/api/v1/alerts", { org_id: orgId, state, cursor, limit: ALERTS_PAGE }, signal),
      placeholderData: keepPreviousData,
    }),
};

function useInvalidating<TVars, TResult>(keys: (readonly unknown[])[], fn: (vars: TVars) => Promise<TResult>) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: fn,
    onSuccess: () => Promise.all(keys.map((queryKey) => qc.invalidateQueries({ queryKey }))),
  });
}

export function useCreateRule(orgId: string) {
  return useInvalidating([alertKeys.rules(orgId)], (body: AlertRuleCreate) =>
    api.post<AlertRule>("/api/v1/alert-rules", body, { org_id: orgId }),
  );
}

export function useUpdateRule(orgId: string) {
  return useInvalidating([alertKeys.rules(orgId)], ({ id, body }: { id: string; body: AlertRulePatch }) =>
    api.patch<AlertRule>(`/api/v1/alert-rules/${id}`, body, { org_id: orgId }),
  );
}

/** Deleting a rule deletes its alerts and silences too. */
export function useDeleteRule(orgId: string) {
  return useInvalidating([alertKeys.rules(orgId), alertKeys.alerts(orgId), alertKeys.silences(orgId)], (id: string) =>
    api.delete(`/api/v1/alert-rules/${id}`, { org_id: orgId }),
  );
}

/** The answer holds the signing secret, shown this once. */
export function useCreateChannel(orgId: string) {
  return useInvalidating([alertKeys.channels(orgId)], (body: ChannelCreate) =>
    api.post<CreatedChannel>("/api/v1/notification-channels", body, { org_id: orgId }),
  );
}

/** Deleting a channel removes it from every rule. */
export function useDeleteChannel(orgId: string) {
  return useInvalidating([alertKeys.channels(orgId), alertKeys.rules(orgId)], (id: string) =>
    api.delete(`/api/v1/notification-channels/${id}`, { org_id: orgId }),
  );
}

/** One signed `test` delivery, sent at once; answers how it went (it is not queued). */
export function useTestChannel(orgId: string) {
  return useMutation({
    mutationFn: (id: string) => api.post<ChannelTestResult>(`/api/v1/notification-channels/${id}/test`, undefined, { org_id: orgId }),
  });
}

export function useCreateSilence(orgId: string) {
  return useInvalidating([alertKeys.silences(orgId), alertKeys.alerts(orgId)], (body: SilenceCreate) =>
    api.post<Silence>("/api/v1/silences", body, { org_id: orgId }),
  );
}

export function useDeleteSilence(orgId: string) {
  return useInvalidating([alertKeys.silences(orgId), alertKeys.alerts(orgId)], (id: string) =>
    api.delete(`/api/v1/silences/${id}`, { org_id: orgId }),
  );
}
