/** The signed-in user and the cookie session: `/api/v1/auth/me` and `/api/v1/auth/session`. */
import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, request, type Schemas } from "@/lib/api-client";

export type Me = Schemas["Me"];
export type Role = Schemas["Role"];

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export const authKeys = { me: ["auth", "me"] as const };

export const meQuery = queryOptions({
  queryKey: authKeys.me,
  queryFn: ({ signal }) => api.get<Me>("/api/v1/auth/me", undefined, signal),
  staleTime: 60_000,
});

/** The caller's role in `orgId` (superusers act as admins everywhere), or null if not a member. */
export function roleIn(me: Me | undefined, orgId: string): Role | null {
  if (!me) return null;
  const found = me.organizations.find((o) => o.id === orgId)?.role ?? null;
  return me.is_superuser ? "admin" : found;
}

export function atLeast(role: Role | null, needed: Role): boolean {
  return role !== null && RANK[role] >= RANK[needed];
}

/** What the current user may do in this organisation; the server checks again anyway. */
export function usePermissions(orgId: string) {
  const { data: me } = useQuery(meQuery);
  const role = roleIn(me, orgId);
  return {
    role,
    canOperate: atLeast(role, "operator"),
    canAdmin: atLeast(role, "admin"),
  };
}

export function useSignIn() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: { email: string; password: string }) =>
      request<unknown>("POST", "/api/v1/auth/session", { body, skipAuthRedirect: true }),
    onSuccess: async () => {
      qc.clear();
      await qc.fetchQuery(meQuery);
    },
  });
}

export function useSignOut() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: () => request<unknown>("DELETE", "/api/v1/auth/session", { skipAuthRedirect: true }),
    onSettled: () => qc.clear(),
  });
}
