import { memo } from "react";
import { highlightLine } from "../lib/highlight";

/** Read-only YAML with line numbers and syntax colours. */
export const YamlView = memo(function YamlView({ text, label }: { text: string; label: string }) {
  const lines = text.replace(/\n$/, "").split("\n");
  return (
    <pre className="yaml" aria-label={label} tabIndex={0}>
      <code>
        {lines.map((line, i) => (
          <span className="yaml__line" key={i}>
            <span className="yaml__gutter" aria-hidden="true">
              {i + 1}
            </span>
            {highlightLine(line).map((t, j) =>
              t.kind === "text" ? t.text : (
                <span key={j} className={`yaml__${t.kind}`}>
                  {t.text}
                </span>
              ),
            )}
            {"\n"}
          </span>
        ))}
      </code>
    </pre>
  );
});
