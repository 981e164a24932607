import { alignRows, foldRows, sideBySide } from "./side-by-side";

describe("alignRows", () => {
  it("pairs a removed run with the added run that follows it, numbering each side", () => {
    const rows = alignRows([
      { kind: "same", text: "a" },
      { kind: "removed", text: "b" },
      { kind: "removed", text: "c" },
      { kind: "added", text: "B" },
      { kind: "same", text: "d" },
      { kind: "added", text: "e" },
    ]);
    expect(rows).toEqual([
      { kind: "same", left: { no: 1, text: "a" }, right: { no: 1, text: "a" } },
      { kind: "changed", left: { no: 2, text: "b" }, right: { no: 2, text: "B" } },
      { kind: "removed", left: { no: 3, text: "c" }, right: null },
      { kind: "same", left: { no: 4, text: "d" }, right: { no: 3, text: "d" } },
      { kind: "added", left: null, right: { no: 4, text: "e" } },
    ]);
  });
});

describe("sideBySide", () => {
  it("counts added and removed lines of two bodies", () => {
    const before = "exporters:\n  debug: {}\nservice: {}\n";
    const after = "exporters:\n  debug:\n    verbosity: detailed\nservice: {}\n";
    const diff = sideBySide(before, after)!;
    expect([diff.added, diff.removed]).toEqual([2, 1]);
    expect(diff.rows.map((r) => r.kind)).toEqual(["same", "changed", "added", "same"]);
    expect(diff.rows[1]).toMatchObject({ left: { text: "  debug: {}" }, right: { text: "  debug:" } });
  });

  it("is empty of changes for equal bodies", () => {
    expect(sideBySide("a\nb\n", "a\nb\n")).toMatchObject({ added: 0, removed: 0 });
  });
});

describe("foldRows", () => {
  it("keeps context around changes and folds the rest into gaps", () => {
    const lines = Array.from({ length: 20 }, (_, i) => ({ kind: "same" as const, text: `l${i}` }));
    lines[10] = { kind: "added" as never, text: "new" };
    const rows = alignRows(lines);
    expect(foldRows(rows, 2)).toEqual([null, 8, 9, 10, 11, 12, null]);
  });
});
