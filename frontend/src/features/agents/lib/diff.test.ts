import { diffLines } from "./diff";

const compact = (before: string, after: string) =>
  diffLines(before, after)?.map((l) => `${l.kind === "same" ? " " : l.kind === "added" ? "+" : "-"}${l.text}`);

describe("diffLines", () => {
  it("marks removed and added lines in order", () => {
    expect(compact("a\nb\nc\n", "a\nB\nc\nd\n")).toEqual([" a", "+B", "-b", " c", "+d"]);
  });
  it("is all same for equal text", () => {
    expect(compact("x\ny", "x\ny")).toEqual([" x", " y"]);
  });
  it("handles empty sides", () => {
    expect(compact("", "a")).toEqual(["+a", "-"]);
  });
  it("gives up on huge inputs instead of freezing", () => {
    const big = (p: string) => Array.from({ length: 3000 }, (_, i) => `${p}${i}`).join("\n");
    expect(diffLines(big("a"), big("b"))).toBeNull();
  });
});
