/**
 * A small YAML highlighter for configuration views: one pass per line, no dependencies.
 * It colours comments, keys, strings, numbers, booleans/null, anchors and list dashes; anything
 * it does not recognise stays plain text (it never hides or reorders characters).
 */
export type TokenKind = "comment" | "key" | "string" | "number" | "literal" | "punct" | "anchor" | "text";
export interface Token {
  kind: TokenKind;
  text: string;
}

const SCALAR_LITERAL = /^(true|false|null|~|yes|no|on|off)$/i;
const NUMBER = /^[-+]?(\d[\d_]*(\.\d+)?([eE][-+]?\d+)?|0x[0-9a-fA-F]+|\.inf|\.nan)$/;

function scalar(text: string): Token[] {
  const m = /^(\s*)(.*?)(\s*)$/.exec(text);
  const [lead, body, trail] = m ? [m[1] ?? "", m[2] ?? "", m[3] ?? ""] : ["", text, ""];
  const out: Token[] = [];
  if (lead) out.push({ kind: "text", text: lead });
  if (body) {
    let kind: TokenKind = "text";
    if (/^["'].*["']$/.test(body) || /^["']/.test(body)) kind = "string";
    else if (NUMBER.test(body)) kind = "number";
    else if (SCALAR_LITERAL.test(body)) kind = "literal";
    else if (/^[&*]\S+$/.test(body)) kind = "anchor";
    else if (/^[{}[\],|>-]+$/.test(body)) kind = "punct";
    out.push({ kind, text: body });
  }
  if (trail) out.push({ kind: "text", text: trail });
  return out;
}

/** Finds a comment start: a # at line start or after whitespace, outside quotes. */
function commentIndex(line: string): number {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === "#" && (i === 0 || /\s/.test(line[i - 1] ?? ""))) return i;
  }
  return -1;
}

export function highlightLine(line: string): Token[] {
  const tokens: Token[] = [];
  const hash = commentIndex(line);
  const code = hash >= 0 ? line.slice(0, hash) : line;
  const comment = hash >= 0 ? line.slice(hash) : "";
  const m = /^(\s*)(- )?((?:"[^"]*"|'[^']*'|[^\s#:'"][^:#]*?)\s*:)(\s|$)(.*)$/.exec(code);
  if (m) {
    if (m[1]) tokens.push({ kind: "text", text: m[1] });
    if (m[2]) tokens.push({ kind: "punct", text: m[2] });
    tokens.push({ kind: "key", text: (m[3] ?? "").slice(0, -1) });
    tokens.push({ kind: "punct", text: ":" });
    tokens.push(...scalar((m[4] ?? "") + (m[5] ?? "")));
  } else {
    const dash = /^(\s*)(- )(.*)$/.exec(code);
    if (dash) {
      if (dash[1]) tokens.push({ kind: "text", text: dash[1] });
      tokens.push({ kind: "punct", text: dash[2] ?? "" });
      tokens.push(...scalar(dash[3] ?? ""));
    } else if (code) tokens.push(...scalar(code));
  }
  if (comment) tokens.push({ kind: "comment", text: comment });
  return tokens;
}
