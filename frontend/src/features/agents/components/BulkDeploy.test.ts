import type { Gateway } from "../api/gateways";
import { presetFor } from "./BulkDeploy";

const gw = (id: string) => ({ id, name: `gw-${id}` }) as Gateway;

describe("presetFor", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("deploys ticked agents by id", async () => {
    const preset = await presetFor("o", { mode: "selected", gateways: [gw("a"), gw("b")] });
    expect(preset).toEqual({ choice: { kind: "gateways", ids: ["a", "b"] }, description: "2 agents selected", count: 2 });
  });

  it("keeps a selector-only filter as the selector, and no filter as all agents", async () => {
    expect(await presetFor("o", { mode: "matching", filters: { selector: "env=prod" }, pageSize: 50, count: 7 })).toEqual({
      choice: { kind: "selector", selector: "env=prod" },
      description: "agents matching env=prod",
      count: 7,
    });
    expect((await presetFor("o", { mode: "matching", filters: {}, pageSize: 50, count: 9 })).choice).toEqual({ kind: "all" });
  });

  it("resolves other filters to the ids of every matching agent, page by page", async () => {
    const pages = [
      { items: [gw("a"), gw("b")], next_cursor: "c1", summary: {} },
      { items: [gw("c")], next_cursor: null, summary: {} },
    ];
    const urls: string[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => {
        urls.push(url);
        return new Response(JSON.stringify(pages[urls.length - 1]), { status: 200 });
      }),
    );
    const preset = await presetFor("o", { mode: "matching", filters: { health: "warning" }, pageSize: 50, count: null });
    expect(preset.choice).toEqual({ kind: "gateways", ids: ["a", "b", "c"] });
    expect(preset.count).toBe(3);
    expect(urls[0]).toContain("health=warning");
    expect(urls[1]).toContain("cursor=c1");
  });
});
