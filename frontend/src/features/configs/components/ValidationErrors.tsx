import { placeOf, type ConfigError } from "../lib/validation";

/** The server's errors, one per line, each with its line:column (a button that goes there). */
export function ValidationErrors({
  errors,
  title,
  onPick,
}: {
  errors: readonly ConfigError[];
  title: string;
  onPick?: (e: ConfigError) => void;
}) {
  if (errors.length === 0) return null;
  return (
    <div className="validation" role="alert" aria-label="Validation errors">
      <p className="validation__title">{title}</p>
      <ul className="validation__list">
        {errors.map((e, i) => (
          <li key={`${i}-${e.line}-${e.column}`} className="validation__item">
            {e.line !== null ? (
              <button type="button" className="validation__place mono" onClick={() => onPick?.(e)} title="Go to this line">
                {placeOf(e)}
              </button>
            ) : (
              <span className="validation__place validation__place--none mono">—</span>
            )}
            <span className="validation__message">{e.message}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}
