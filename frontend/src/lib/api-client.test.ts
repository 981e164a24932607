import { ApiError, api, buildUrl, readCookie, setUnauthorizedHandler } from "./api-client";

function respond(status: number, body: unknown) {
  return vi.fn(async () => new Response(body === undefined ? "" : JSON.stringify(body), { status }));
}

describe("api client", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    document.cookie = "flowgate_csrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT";
    setUnauthorizedHandler(() => undefined);
  });

  it("drops empty query values", () => {
    expect(buildUrl("/x", { a: "1", b: undefined, c: "", d: null, e: 0 })).toBe("/x?a=1&e=0");
  });

  it("sends the CSRF cookie as X-CSRF-Token on unsafe methods only", async () => {
    document.cookie = "flowgate_csrf=abc%3D";
    expect(readCookie("flowgate_csrf")).toBe("abc=");
    const fetch = respond(200, { ok: true });
    vi.stubGlobal("fetch", fetch);
    await api.post("/api/v1/things", { a: 1 });
    await api.get("/api/v1/things");
    const [, post] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    const [, get] = fetch.mock.calls[1] as unknown as [string, RequestInit];
    expect((post.headers as Record<string, string>)["X-CSRF-Token"]).toBe("abc=");
    expect(post.credentials).toBe("same-origin");
    expect((get.headers as Record<string, string>)["X-CSRF-Token"]).toBeUndefined();
  });

  it("turns {detail} into ApiError and reports 401 to the one handler", async () => {
    const seen: string[] = [];
    setUnauthorizedHandler((detail) => seen.push(detail));
    vi.stubGlobal("fetch", respond(401, { detail: "Session expired; sign in again" }));
    await expect(api.get("/api/v1/auth/me")).rejects.toEqual(
      new ApiError(401, "Session expired; sign in again", { detail: "Session expired; sign in again" }),
    );
    expect(seen).toEqual(["Session expired; sign in again"]);

    vi.stubGlobal("fetch", respond(422, { detail: [{ loc: ["query", "selector"], msg: "Invalid selector" }] }));
    await expect(api.get("/api/v1/gateways")).rejects.toMatchObject({ status: 422, detail: "selector: Invalid selector" });
    expect(seen).toHaveLength(1);

    // A refused configuration: the message is the detail, the body keeps the errors.
    const refused = { detail: { message: "The configuration is not valid", errors: [{ line: 5, column: 8, message: "bad" }] } };
    vi.stubGlobal("fetch", respond(422, refused));
    await expect(api.post("/api/v1/configs/validate", { config_yaml: "x" })).rejects.toMatchObject({
      status: 422,
      detail: "The configuration is not valid",
      body: refused,
    });
  });

  it("says when the server is unreachable", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => Promise.reject(new TypeError("Failed to fetch"))));
    await expect(api.get("/x")).rejects.toMatchObject({ status: 0, detail: "FlowGate is unreachable; check your connection" });
  });
});
