import { runBulk, summarize } from "./bulk";

describe("runBulk", () => {
  it("counts outcomes, keeps going after failures and limits concurrency", async () => {
    let active = 0;
    let peak = 0;
    const seen: number[] = [];
    const result = await runBulk(
      [1, 2, 3, 4, 5, 6, 7],
      async (n) => {
        active += 1;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 5));
        active -= 1;
        if (n === 3) throw new Error("Gateway not found");
        return n % 2 ? "updated" : "unchanged";
      },
      { concurrency: 2, describe: (n) => `gw-${n}`, onProgress: (p) => seen.push(p.done) },
    );
    expect(peak).toBe(2);
    expect(result).toEqual({ done: 7, updated: 3, unchanged: 3, failed: 1, errors: ["gw-3: Gateway not found"] });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(summarize(result)).toBe("3 updated, 3 unchanged, 1 failed");
  });

  it("walks an async source page by page", async () => {
    async function* pages() {
      for (const page of [["a", "b"], ["c"]]) yield* page;
    }
    const result = await runBulk(pages(), async () => "updated" as const);
    expect(summarize(result)).toBe("3 updated, 0 failed");
  });
});
