import { useQuery } from "@tanstack/react-query";
import { useRef, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import { EmptyState, ErrorState, Skeleton } from "@/components/States";
import { ApiError, errorMessage } from "@/lib/api-client";
import { useDebounced } from "@/lib/debounce";
import { configQueries, useCreateVersion } from "../api/configs";
import { ValidationErrors } from "../components/ValidationErrors";
import { YamlEditor, type YamlEditorHandle } from "../components/YamlEditor";
import { validationFromError, type ValidationResult } from "../lib/validation";

/** What a template's first version starts from: the smallest valid collector configuration. */
export const STARTER = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
processors:
  batch: {}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
`;

export const VALIDATE_DELAY_MS = 400;

function Editor({ orgId, configId, name, initial, base }: { orgId: string; configId: string; name: string; initial: string; base: number | null }) {
  const navigate = useNavigate();
  const [text, setText] = useState(initial);
  const [message, setMessage] = useState("");
  const [saved, setSaved] = useState<{ text: string; result: ValidationResult } | null>(null);
  const editor = useRef<YamlEditorHandle | null>(null);
  const settled = useDebounced(text, VALIDATE_DELAY_MS);
  const check = useQuery({ ...configQueries.validate(orgId, settled), enabled: settled.trim() !== "" });
  const create = useCreateVersion(orgId, configId);

  // What the editor marks: the server's answer to saving this very text, else the live check.
  const current: { text: string; result: ValidationResult } | null =
    saved && saved.text === text ? saved : check.data && settled === text ? { text: settled, result: check.data } : null;
  const errors = current?.result.errors ?? [];
  const checking = settled !== text || check.isFetching;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = text;
    create.mutate(
      { config_yaml: body, message: message.trim() || null },
      {
        onSuccess: (v) => navigate(`/orgs/${orgId}/configs/${configId}?version=${v.version}`),
        onError: (error) => {
          const refused = validationFromError(error);
          if (refused) setSaved({ text: body, result: refused });
        },
      },
    );
  };

  let status: React.ReactNode;
  if (text.trim() === "") status = <span className="muted">Empty</span>;
  else if (checking && !current) status = <span className="muted">Checking…</span>;
  else if (check.isError && !current) status = <span className="text-bad">Could not check: {errorMessage(check.error)}</span>;
  else if (current && current.result.valid) status = <span className="text-good">✓ Valid collector configuration</span>;
  else if (current) status = <span className="text-bad">{`${errors.length} error${errors.length === 1 ? "" : "s"}`}</span>;

  const saveError = create.isError && !validationFromError(create.error) ? errorMessage(create.error) : null;
  return (
    <form className="editor-page" onSubmit={submit} aria-label="New version">
      <div className="editor-page__main card card--flush">
        <div className="card__header card__header--padded">
          <h2 className="card__title">{base ? `Starting from v${base}` : "First version"}</h2>
          <span className="card__spacer" />
          <span className="editor-status" role="status" aria-live="polite" aria-label="Validation">
            {status}
            {checking && current ? <span className="muted"> · checking…</span> : null}
          </span>
        </div>
        <YamlEditor
          initial={initial}
          onChange={setText}
          errors={errors}
          errorsFor={current?.text ?? null}
          label={`Configuration of ${name}`}
          handleRef={editor}
        />
      </div>
      <aside className="editor-page__side">
        <section className="card">
          <label className="field">
            <span>Message</span>
            <input value={message} maxLength={1000} placeholder="What changed, and why" onChange={(e) => setMessage(e.target.value)} />
          </label>
          {saveError && (
            <p className="notice notice--error" role="alert">
              {saveError}
            </p>
          )}
          <div className="editor-page__actions">
            <Link className="btn" to={`/orgs/${orgId}/configs/${configId}`}>
              Cancel
            </Link>
            <button type="submit" className="btn btn--primary" disabled={create.isPending || text.trim() === ""}>
              {create.isPending ? "Saving…" : "Save version"}
            </button>
          </div>
          <p className="field__hint">Versions never change once saved. Saving does not deploy.</p>
        </section>
        {current && !current.result.valid && (
          <ValidationErrors
            errors={errors}
            title={saved && saved.text === text ? "Not saved: the server refused this configuration" : "Problems found"}
            onPick={(e) => e.line !== null && editor.current?.goTo(e.line, e.column)}
          />
        )}
      </aside>
    </form>
  );
}

export function NewVersionRoute({ canOperate }: { canOperate: boolean }) {
  const { orgId = "", configId = "" } = useParams();
  const [params] = useSearchParams();
  const template = useQuery(configQueries.detail(orgId, configId));
  const fromParam = Number(params.get("from")) || null;
  const base = fromParam ?? template.data?.latest_version ?? null;
  const body = useQuery({ ...configQueries.version(orgId, configId, base ?? 0), enabled: base !== null });

  const back = (
    <Link className="crumb" to={`/orgs/${orgId}/configs/${configId}`}>
      ← {template.data?.name ?? "Template"}
    </Link>
  );
  if (!canOperate) {
    return (
      <div className="page">
        {back}
        <EmptyState title="Operators write configurations">Your role in this organisation is viewer.</EmptyState>
      </div>
    );
  }
  if (template.isPending || (base !== null && body.isPending)) {
    return (
      <div className="page">
        {back}
        <Skeleton rows={12} columns={2} />
      </div>
    );
  }
  const error = template.error ?? (base !== null ? body.error : null);
  if (error || !template.data) {
    return (
      <div className="page">
        {back}
        {error instanceof ApiError && error.status === 404 ? (
          <EmptyState title="Not found">This template or version does not exist.</EmptyState>
        ) : (
          <ErrorState error={error} />
        )}
      </div>
    );
  }
  return (
    <div className="page page--wide">
      {back}
      <div className="page-header">
        <div>
          <h1 className="page-header__title">New version of {template.data.name}</h1>
          <p className="page-header__subtitle">Checked by the server as you type; errors are marked at their line.</p>
        </div>
      </div>
      <Editor
        key={`${configId}:${base ?? "new"}`}
        orgId={orgId}
        configId={configId}
        name={template.data.name}
        initial={base !== null && body.data ? body.data.config_yaml : STARTER}
        base={base}
      />
    </div>
  );
}
