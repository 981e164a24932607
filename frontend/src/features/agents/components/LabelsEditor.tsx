import { useState, type FormEvent } from "react";
import { LabelChips } from "@/components/LabelChips";
import { errorMessage } from "@/lib/api-client";
import { useUpdateGateway, type Gateway } from "../api/gateways";
import { parseLabelAssignments } from "../lib/selector";

/** The gateway's labels; operators add (key=value) and remove them in place. */
export function LabelsEditor({ orgId, gateway, editable }: { orgId: string; gateway: Gateway; editable: boolean }) {
  const update = useUpdateGateway(orgId);
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const labels = Object.fromEntries(Object.entries(gateway.labels).map(([k, v]) => [k, String(v)]));

  const save = (next: Record<string, string>) =>
    update.mutate(
      { id: gateway.id, body: { labels: next } },
      {
        onSuccess: () => {
          setText("");
          setError(null);
        },
        onError: (e) => setError(errorMessage(e)),
      },
    );

  const add = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseLabelAssignments(text);
    if (!parsed.ok) setError(parsed.error);
    else save({ ...labels, ...parsed.labels });
  };

  return (
    <section className="card" aria-labelledby="labels-title">
      <header className="card__header">
        <h2 id="labels-title" className="card__title">
          Labels
        </h2>
      </header>
      {!editable ? (
        <LabelChips labels={labels} max={50} />
      ) : (
        <>
          <ul className="chips chips--wrap" aria-label="Labels">
            {Object.keys(labels).length === 0 && <li className="muted">No labels yet</li>}
            {Object.entries(labels)
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([k, v]) => (
                <li key={k} className="chip">
                  <span className="chip__key">{k}</span>=<span className="chip__value">{v}</span>
                  <button
                    type="button"
                    className="chip__remove"
                    aria-label={`Remove label ${k}`}
                    disabled={update.isPending}
                    onClick={() => {
                      save(Object.fromEntries(Object.entries(labels).filter(([key]) => key !== k)));
                    }}
                  >
                    ×
                  </button>
                </li>
              ))}
          </ul>
          <form className="inline-form" onSubmit={add}>
            <label className="field field--inline">
              <span className="sr-only">New labels</span>
              <input className="mono" placeholder="key=value, …" value={text} onChange={(e) => setText(e.target.value)} />
            </label>
            <button type="submit" className="btn btn--small" disabled={update.isPending || !text.trim()}>
              Add label
            </button>
          </form>
        </>
      )}
      {error && (
        <p className="field__error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}
