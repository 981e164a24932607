/**
 * The one HTTP client of the UI. It sends the session cookie (same origin), adds the CSRF header
 * to every unsafe request, turns error bodies (`{"detail": ...}`) into `ApiError`, and reports a
 * 401 to the single handler the app registers (which sends the user to sign-in with the server's
 * message). Nothing else in the UI calls `fetch` for the API.
 */
import type { components } from "./api-types";

export type Schemas = components["schemas"];

export class ApiError extends Error {
  readonly status: number;
  readonly detail: string;
  /** The parsed error body, for callers that read more than the message (a 422's `errors`). */
  readonly body: unknown;

  constructor(status: number, detail: string, body?: unknown) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

export const CSRF_COOKIE = "flowgate_csrf";
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export function readCookie(name: string, cookies: string = document.cookie): string | null {
  for (const part of cookies.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** True while the browser holds a session's readable companion cookie. */
export function hasSessionCookie(): boolean {
  return readCookie(CSRF_COOKIE) !== null;
}

type UnauthorizedHandler = (detail: string) => void;
let onUnauthorized: UnauthorizedHandler = () => undefined;

/** Registers the app's single 401 handler (see app/providers). */
export function setUnauthorizedHandler(handler: UnauthorizedHandler): void {
  onUnauthorized = handler;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export function buildUrl(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

function detailOf(status: number, body: unknown): string {
  if (body && typeof body === "object" && "detail" in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === "string") return detail;
    // A refused configuration: {"detail": {"message": ..., "errors": [...]}}.
    if (detail && typeof detail === "object" && typeof (detail as { message?: unknown }).message === "string") {
      return (detail as { message: string }).message;
    }
    if (Array.isArray(detail) && detail.length > 0) {
      const first = detail[0] as { msg?: unknown; loc?: unknown };
      const where = Array.isArray(first.loc) ? first.loc.slice(1).join(".") : "";
      if (typeof first.msg === "string") return where ? `${where}: ${first.msg}` : first.msg;
    }
  }
  return status >= 500 ? `Server error (${status}); try again` : `Request failed (${status})`;
}

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
  /** Leave a 401 to the caller (the sign-in form shows "Invalid email or password" itself). */
  skipAuthRedirect?: boolean;
}

export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method)) {
    const csrf = readCookie(CSRF_COOKIE);
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  let response: Response;
  try {
    response = await fetch(buildUrl(path, options.query), {
      method,
      headers,
      credentials: "same-origin",
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, "FlowGate is unreachable; check your connection");
  }
  const text = await response.text();
  let body: unknown = undefined;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, detailOf(response.status, body), body);
    if (response.status === 401 && !options.skipAuthRedirect) onUnauthorized(error.detail);
    throw error;
  }
  return body as T;
}

export const api = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>("GET", path, { query, signal }),
  post: <T>(path: string, body?: unknown, query?: Query, signal?: AbortSignal) =>
    request<T>("POST", path, { body, query, signal }),
  patch: <T>(path: string, body: unknown, query?: Query) => request<T>("PATCH", path, { body, query }),
  put: <T>(path: string, body: unknown, query?: Query) => request<T>("PUT", path, { body, query }),
  delete: <T = void>(path: string, query?: Query) => request<T>("DELETE", path, { query }),
};

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.detail;
  if (error instanceof Error) return error.message;
  return "Something went wrong";
}
