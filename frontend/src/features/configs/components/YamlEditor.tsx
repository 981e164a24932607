import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { yaml } from "@codemirror/lang-yaml";
import { bracketMatching, HighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import { EditorView, drawSelection, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers } from "@codemirror/view";
import { tags } from "@lezer/highlight";
import { useEffect, useRef } from "react";
import { marksFor, type ConfigError } from "../lib/validation";

export interface YamlEditorHandle {
  /** Moves the cursor to a 1-based line (and column) and focuses the editor. */
  goTo: (line: number, column: number | null) => void;
}

interface Props {
  initial: string;
  onChange: (text: string) => void;
  /** Errors for the text they were computed for; marked only while the editor still shows it. */
  errors: readonly ConfigError[];
  errorsFor: string | null;
  label: string;
  handleRef?: React.RefObject<YamlEditorHandle | null>;
}

const theme = EditorView.theme({
  "&": { fontSize: "13px", height: "100%" },
  ".cm-scroller": { fontFamily: 'ui-monospace, SFMono-Regular, "JetBrains Mono", Menlo, Consolas, monospace', lineHeight: "1.55" },
  ".cm-content": { caretColor: "var(--text)" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--text)" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection": {
    background: "color-mix(in srgb, var(--accent) 28%, transparent)",
  },
  ".cm-gutters": { background: "var(--surface-2)", color: "var(--muted)", borderRight: "1px solid var(--border)" },
  ".cm-activeLine": { background: "color-mix(in srgb, var(--accent) 7%, transparent)" },
  ".cm-activeLineGutter": { background: "color-mix(in srgb, var(--accent) 12%, transparent)" },
  "&.cm-focused": { outline: "none" },
});

/** The read-only viewer's colours (styles.css), so both themes read the same. */
const highlight = HighlightStyle.define([
  { tag: [tags.propertyName, tags.definition(tags.propertyName)], color: "var(--y-key)" },
  { tag: [tags.string, tags.special(tags.string)], color: "var(--y-string)" },
  { tag: tags.number, color: "var(--y-number)" },
  { tag: [tags.bool, tags.null, tags.keyword], color: "var(--y-literal)" },
  { tag: [tags.comment, tags.lineComment], color: "var(--y-comment)", fontStyle: "italic" },
  { tag: [tags.labelName, tags.typeName], color: "var(--y-literal)" },
  { tag: [tags.punctuation, tags.separator, tags.squareBracket, tags.brace], color: "var(--muted)" },
]);

/**
 * CodeMirror 6 with YAML highlighting. The server's validation errors become lint diagnostics:
 * a mark under the key or value at fault and a marker in the gutter of its line.
 */
export function YamlEditor({ initial, onChange, errors, errorsFor, label, handleRef }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const changed = useRef(onChange);
  useEffect(() => {
    changed.current = onChange;
  }, [onChange]);

  useEffect(() => {
    if (!host.current) return;
    const v = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: initial,
        extensions: [
          lineNumbers(),
          highlightActiveLineGutter(),
          history(),
          drawSelection(),
          indentOnInput(),
          bracketMatching(),
          highlightActiveLine(),
          syntaxHighlighting(highlight),
          yaml(),
          lintGutter(),
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          EditorState.tabSize.of(2),
          EditorView.contentAttributes.of({ "aria-label": label }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) changed.current(u.state.doc.toString());
          }),
          theme,
        ],
      }),
    });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is created once; `initial` only seeds it.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const text = v.state.doc.toString();
    const diagnostics: Diagnostic[] =
      errorsFor === text
        ? marksFor(text, errors).map((m) => ({ from: m.from, to: m.to, severity: "error", message: m.message, source: "FlowGate" }))
        : [];
    // Stale errors (the text moved on) are dropped, not shown at the wrong place.
    if (errorsFor === text || errorsFor === null) v.dispatch(setDiagnostics(v.state, diagnostics));
  }, [errors, errorsFor]);

  useEffect(() => {
    if (!handleRef) return;
    handleRef.current = {
      goTo: (line, column) => {
        const v = view.current;
        if (!v) return;
        const doc = v.state.doc;
        const l = doc.line(Math.min(Math.max(1, line), doc.lines));
        const pos = Math.min(l.to, l.from + Math.max(0, (column ?? 1) - 1));
        v.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
        v.focus();
      },
    };
  }, [handleRef]);

  return (
    <>
      <div className="code-editor" ref={host} />
      <p className="code-editor__hint field__hint">Tab indents. To leave the editor with the keyboard, press Esc, then Tab.</p>
    </>
  );
}
