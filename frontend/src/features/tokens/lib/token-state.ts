import type { RegistrationToken } from "../api/tokens";

export type TokenState = "active" | "expired" | "used up" | "revoked";

/**
 * A token's state from its fields, in the server's order of refusal: revoked first, then
 * expired, then used up (`max_uses` null = unlimited).
 */
export function tokenState(
  t: Pick<RegistrationToken, "is_active" | "revoked_at" | "expires_at" | "max_uses" | "use_count">,
  now: number,
): TokenState {
  if (t.revoked_at || !t.is_active) return "revoked";
  if (Date.parse(t.expires_at) <= now) return "expired";
  if (t.max_uses !== null && t.max_uses !== undefined && t.use_count >= t.max_uses) return "used up";
  return "active";
}

export function usesText(t: Pick<RegistrationToken, "max_uses" | "use_count">): string {
  return t.max_uses === null || t.max_uses === undefined ? `${t.use_count} / unlimited` : `${t.use_count} / ${t.max_uses}`;
}
