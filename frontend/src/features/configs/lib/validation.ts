/**
 * The server's verdict on a configuration, and where each error sits in the editor's text.
 *
 * The server counts lines and columns from 1, in code points, and ends lines at `\n`, `\r\n`,
 * `\r`, U+2028 and U+2029 (as YAML does). The editor's text has only `\n` (CodeMirror
 * normalises line breaks), so offsets here are positions in that text: UTF-16 code units.
 */
import { ApiError } from "@/lib/api-client";

export interface ConfigError {
  line: number | null;
  column: number | null;
  message: string;
}

export interface ValidationResult {
  valid: boolean;
  /** The server's summary when it refused the text. */
  message: string | null;
  errors: ConfigError[];
}

/** A 422 "The configuration is not valid" body as a result; null for any other error. */
export function validationFromError(error: unknown): ValidationResult | null {
  if (!(error instanceof ApiError) || error.status !== 422) return null;
  const detail = (error.body as { detail?: unknown } | undefined)?.detail;
  if (!detail || typeof detail !== "object" || Array.isArray(detail)) return null;
  const { message, errors } = detail as { message?: unknown; errors?: unknown };
  if (!Array.isArray(errors)) return null;
  return {
    valid: false,
    message: typeof message === "string" ? message : error.detail,
    errors: errors.map(toError).filter((e): e is ConfigError => e !== null),
  };
}

function toError(raw: unknown): ConfigError | null {
  if (!raw || typeof raw !== "object") return null;
  const { line, column, message } = raw as Record<string, unknown>;
  if (typeof message !== "string") return null;
  const whole = (n: unknown) => (typeof n === "number" && Number.isInteger(n) && n >= 1 ? n : null);
  return { line: whole(line), column: whole(column), message };
}

/** Where a line starts, for every line of `text`, by the server's line rule. */
export function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a || c === 0x2028 || c === 0x2029) starts.push(i + 1);
    else if (c === 0x0d) {
      if (text.charCodeAt(i + 1) === 0x0a) i++;
      starts.push(i + 1);
    }
  }
  return starts;
}

function lineEnd(text: string, start: number): number {
  let i = start;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029) break;
    i++;
  }
  return i;
}

/** `column` code points into the line at `start`, as a UTF-16 offset (never past `end`). */
function advance(text: string, start: number, end: number, column: number): number {
  let at = start;
  for (let n = 1; n < column && at < end; n++) {
    const c = text.charCodeAt(at);
    at += c >= 0xd800 && c <= 0xdbff && at + 1 < end ? 2 : 1;
  }
  return at;
}

export interface Mark {
  from: number;
  to: number;
  /** 1-based line of the mark in the text (the server's, clamped to the text). */
  line: number;
  message: string;
}

const TOKEN = /[^\s:,[\]{}#]/;

/**
 * The range each error marks: from its column to the end of the token there (a key, a value);
 * the whole line when there is no column or the column is past the line's end. An error with
 * no line has no mark (it is listed only). A line past the end marks the last line.
 */
export function marksFor(text: string, errors: readonly ConfigError[]): Mark[] {
  const starts = lineStarts(text);
  const marks: Mark[] = [];
  for (const e of errors) {
    if (e.line === null) continue;
    const line = Math.min(e.line, starts.length);
    const start = starts[line - 1] ?? 0;
    const end = lineEnd(text, start);
    let from = start;
    let to = end;
    if (e.column !== null) {
      let at = advance(text, start, end, e.column);
      // A column on blank space points at what follows it.
      while (at < end && (text[at] === " " || text[at] === "\t")) at++;
      if (at < end) {
        from = at;
        to = at;
        while (to < end && TOKEN.test(text[to] as string)) to++;
        if (to === from) to = Math.min(end, from + 1);
      }
    }
    // Leading indentation is not the problem: mark what is written on the line.
    if (from === start) {
      while (from < to && (text[from] === " " || text[from] === "\t")) from++;
      if (from === to) from = start;
    }
    marks.push({ from, to, line, message: e.message });
  }
  return marks;
}

/** "5:8", "5" or "" for an error's place. */
export function placeOf(e: ConfigError): string {
  if (e.line === null) return "";
  return e.column === null ? `${e.line}` : `${e.line}:${e.column}`;
}
