import { highlightLine } from "./highlight";

const kinds = (line: string) => highlightLine(line).filter((t) => t.text.trim()).map((t) => [t.kind, t.text.trim()]);

describe("highlightLine", () => {
  it("keeps every character", () => {
    for (const line of ["  otlp:", "    endpoint: 0.0.0.0:4317 # grpc", "  - batch", "key: 'a # b'", "plain"]) {
      expect(highlightLine(line).map((t) => t.text).join("")).toBe(line);
    }
  });
  it("tells keys, values and comments apart", () => {
    expect(kinds("    endpoint: 0.0.0.0:4317 # grpc")).toEqual([
      ["key", "endpoint"],
      ["punct", ":"],
      ["text", "0.0.0.0:4317"],
      ["comment", "# grpc"],
    ]);
    expect(kinds("  timeout: 10")).toEqual([
      ["key", "timeout"],
      ["punct", ":"],
      ["number", "10"],
    ]);
    expect(kinds("  - batch")).toEqual([
      ["punct", "-"],
      ["text", "batch"],
    ]);
    expect(kinds('tls: {insecure: true}')[0]).toEqual(["key", "tls"]);
    expect(kinds("key: 'a # b'")).toEqual([
      ["key", "key"],
      ["punct", ":"],
      ["string", "'a # b'"],
    ]);
  });
});
