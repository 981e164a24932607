import { useEffect, useId, useState } from "react";
import { STATUSES, type GatewayFilters } from "../api/gateways";

/** Name search (debounced), status filter and the label selector box. */
export function AgentFilters({
  filters,
  onChange,
  selectorError,
}: {
  filters: GatewayFilters;
  onChange: (patch: Partial<GatewayFilters>) => void;
  selectorError: string | null;
}) {
  const [name, setName] = useState(filters.name ?? "");
  const [selector, setSelector] = useState(filters.selector ?? "");
  const selectorId = useId();

  // The URL is the source of truth: follow it when it changes elsewhere (chips, back button).
  const [seen, setSeen] = useState({ name: filters.name, selector: filters.selector });
  if (seen.name !== filters.name || seen.selector !== filters.selector) {
    setSeen({ name: filters.name, selector: filters.selector });
    if (seen.name !== filters.name) setName(filters.name ?? "");
    if (seen.selector !== filters.selector) setSelector(filters.selector ?? "");
  }

  useEffect(() => {
    if (name === (filters.name ?? "")) return;
    const timer = setTimeout(() => onChange({ name: name.trim() || undefined }), 300);
    return () => clearTimeout(timer);
  }, [name, filters.name, onChange]);

  return (
    <div className="filters">
      <label className="field field--inline filters__search">
        <span className="sr-only">Search by name</span>
        <input type="search" placeholder="Search by name" value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <label className="field field--inline">
        <span className="sr-only">Status</span>
        <select value={filters.status ?? ""} onChange={(e) => onChange({ status: e.target.value || undefined })}>
          <option value="">Any status</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <form
        className="filters__selector"
        role="search"
        aria-label="Label selector"
        onSubmit={(e) => {
          e.preventDefault();
          onChange({ selector: selector.trim() || undefined });
        }}
      >
        <label className="field field--inline">
          <span className="sr-only">Label selector</span>
          <input
            id={selectorId}
            className={`mono ${selectorError ? "input--invalid" : ""}`}
            placeholder="Label selector, e.g. env=prod, tier in (edge)"
            value={selector}
            aria-invalid={selectorError ? true : undefined}
            aria-describedby={selectorError ? `${selectorId}-error` : undefined}
            onChange={(e) => setSelector(e.target.value)}
          />
        </label>
        <button className="btn" type="submit">
          Apply
        </button>
        {filters.selector && (
          <button
            className="btn btn--ghost"
            type="button"
            onClick={() => {
              setSelector("");
              onChange({ selector: undefined });
            }}
          >
            Clear
          </button>
        )}
        {selectorError && (
          <p id={`${selectorId}-error`} className="field__error" role="alert">
            {selectorError}
          </p>
        )}
      </form>
    </div>
  );
}
