import { ApiError } from "@/lib/api-client";
import { lineStarts, marksFor, placeOf, validationFromError } from "./validation";

const TEXT = [
  "receivers:", // 1
  "  otlp: {}", // 2
  "exporters:", // 3
  "  debug: {}", // 4
  "service:", // 5
  "  pipelines:", // 6
  "    traces:", // 7
  "      receivers: [otlp]", // 8
  "      processors: [nope]", // 9
  "      exporters: [debug]", // 10
].join("\n");

describe("lineStarts", () => {
  it("ends lines at \\n, \\r\\n, \\r and the Unicode separators, as the server does", () => {
    expect(lineStarts("a\nb\r\nc\rd\u2028e\u2029f")).toEqual([0, 2, 5, 7, 9, 11]);
    expect(lineStarts("")).toEqual([0]);
  });
});

describe("marksFor", () => {
  it("marks the token at the error's line and column", () => {
    const [mark] = marksFor(TEXT, [{ line: 9, column: 20, message: "pipeline uses processor 'nope'" }]);
    expect(mark?.line).toBe(9);
    expect(TEXT.slice(mark!.from, mark!.to)).toBe("nope");
  });

  it("marks a key without the colon", () => {
    const [mark] = marksFor(TEXT, [{ line: 4, column: 3, message: "x" }]);
    expect(TEXT.slice(mark!.from, mark!.to)).toBe("debug");
  });

  it("marks the written part of the whole line when there is no column", () => {
    const [mark] = marksFor(TEXT, [{ line: 7, column: null, message: "x" }]);
    expect(TEXT.slice(mark!.from, mark!.to)).toBe("traces:");
  });

  it("leaves errors without a line to the list, and clamps a line past the end", () => {
    const marks = marksFor(TEXT, [
      { line: null, column: null, message: "missing service" },
      { line: 99, column: 1, message: "end" },
    ]);
    expect(marks).toHaveLength(1);
    expect(marks[0]?.line).toBe(10);
    expect(TEXT.slice(marks[0]!.from, marks[0]!.to)).toBe("exporters");
  });

  it("counts columns in code points, not UTF-16 units", () => {
    const text = "a: 😀 bad\n";
    const [mark] = marksFor(text, [{ line: 1, column: 6, message: "x" }]);
    expect(text.slice(mark!.from, mark!.to)).toBe("bad");
  });

  it("marks one character at a column on punctuation, and a column past the end marks the line", () => {
    const text = "key: [a, b\nnext: 1";
    const [bracket, past] = marksFor(text, [
      { line: 1, column: 6, message: "x" },
      { line: 2, column: 40, message: "y" },
    ]);
    expect(text.slice(bracket!.from, bracket!.to)).toBe("[");
    expect(text.slice(past!.from, past!.to)).toBe("next: 1");
  });
});

describe("validationFromError", () => {
  it("reads the 422 body of a refused configuration", () => {
    const body = {
      detail: {
        message: "The configuration is not valid",
        errors: [
          { line: 5, column: 8, message: "bad" },
          { line: null, column: null, message: "no place" },
        ],
      },
    };
    const result = validationFromError(new ApiError(422, "The configuration is not valid", body));
    expect(result).toEqual({
      valid: false,
      message: "The configuration is not valid",
      errors: [
        { line: 5, column: 8, message: "bad" },
        { line: null, column: null, message: "no place" },
      ],
    });
  });

  it("is null for other errors (a malformed request, a 409, a network error)", () => {
    expect(validationFromError(new ApiError(422, "config_yaml: Field required", { detail: [{ msg: "Field required" }] }))).toBeNull();
    expect(validationFromError(new ApiError(409, "Identical to version 1", { detail: "Identical to version 1" }))).toBeNull();
    expect(validationFromError(new Error("offline"))).toBeNull();
  });
});

it("placeOf writes line:column", () => {
  expect(placeOf({ line: 3, column: 7, message: "" })).toBe("3:7");
  expect(placeOf({ line: 3, column: null, message: "" })).toBe("3");
  expect(placeOf({ line: null, column: null, message: "" })).toBe("");
});
