import { useQuery } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { Dialog } from "@/components/Dialog";
import { gatewayQueries } from "@/features/agents/api/gateways";
import { configQueries } from "@/features/configs/api/configs";
import { ValidationErrors } from "@/features/configs/components/ValidationErrors";
import { validationFromError } from "@/features/configs/lib/validation";
import { ApiError, errorMessage } from "@/lib/api-client";
import { useDebounced } from "@/lib/debounce";
import { useCreateDeployment, type Deployment, type DeploymentCreate } from "../api/deployments";
import { parseBatches, targetBody, type TargetChoice } from "../lib/deploy";

/** A fixed set of agents chosen elsewhere (the agents page's bulk action). */
export interface PresetTarget {
  choice: TargetChoice;
  /** "3 selected agents", "agents matching env=prod". */
  description: string;
  count: number | null;
}

interface Props {
  orgId: string;
  open: boolean;
  onOpenChange: (open: boolean) => void;
  onCreated: (deployment: Deployment) => void;
  /** Deploy this version (from a template page); otherwise the form asks for one. */
  config?: { id: string; name: string; version: number };
  target?: PresetTarget;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** "Matches N agents" for a selector, live as it is typed (debounced); the server's message when it is invalid. */
function SelectorCount({ orgId, selector, id }: { orgId: string; selector: string; id: string }) {
  const settled = useDebounced(selector.trim(), 300);
  const count = useQuery({ ...gatewayQueries.matching(orgId, settled), enabled: settled !== "" });
  if (settled === "") return null;
  if (count.isError) {
    return (
      <span className="field__error" id={id} role="alert">
        {count.error instanceof ApiError ? count.error.detail : errorMessage(count.error)}
      </span>
    );
  }
  return (
    <span className="field__hint" id={id} role="status" aria-live="polite">
      {count.data === undefined || count.data === null ? "Counting…" : `Matches ${plural(count.data, "agent")}`}
      {count.isFetching && count.data !== undefined ? " …" : ""}
    </span>
  );
}

function AgentPicker({ orgId, picked, onChange }: { orgId: string; picked: Map<string, string>; onChange: (next: Map<string, string>) => void }) {
  const [search, setSearch] = useState("");
  const name = useDebounced(search.trim(), 250);
  const list = useQuery(gatewayQueries.list(orgId, { name: name || undefined }, null, 50));
  const toggle = (id: string, label: string) => {
    const next = new Map(picked);
    if (next.has(id)) next.delete(id);
    else next.set(id, label);
    onChange(next);
  };
  return (
    <div className="picker">
      <input type="search" aria-label="Find agents by name" placeholder="Find agents by name" value={search} onChange={(e) => setSearch(e.target.value)} />
      <ul className="picker__list" aria-label="Agents">
        {(list.data?.items ?? []).map((g) => (
          <li key={g.id}>
            <label className="checkbox">
              <input type="checkbox" checked={picked.has(g.id)} onChange={() => toggle(g.id, g.name)} />
              <span>{g.name}</span>
              <span className="muted mono">{g.instance_id}</span>
            </label>
          </li>
        ))}
        {list.data && list.data.items.length === 0 && <li className="muted">No agent matches “{name}”.</li>}
      </ul>
      <p className="field__hint">{plural(picked.size, "agent")} picked</p>
    </div>
  );
}

/**
 * Deploy a template version: to agents (picked, or a preset from the agents page), a label
 * selector with a live count of the agents it matches, or all; all at once or staged, with an
 * optional automatic rollback.
 */
export function DeployDialog({ orgId, open, onOpenChange, onCreated, config, target }: Props) {
  const create = useCreateDeployment(orgId);
  const uid = useId();
  const [configId, setConfigId] = useState(config?.id ?? "");
  const [version, setVersion] = useState<number | null>(config?.version ?? null);
  const [kind, setKind] = useState<TargetChoice["kind"]>("selector");
  const [selector, setSelector] = useState("");
  const [picked, setPicked] = useState<Map<string, string>>(new Map());
  const [staged, setStaged] = useState(false);
  const [batches, setBatches] = useState("1, 50%, 100%");
  const [maxFailed, setMaxFailed] = useState(0);
  const [timeout, setTimeoutSeconds] = useState(300);
  const [canary, setCanary] = useState("");
  const [autoRollback, setAutoRollback] = useState(true);
  const [message, setMessage] = useState("");
  const [formError, setFormError] = useState<string | null>(null);

  const templates = useQuery({ ...configQueries.list(orgId), enabled: open && !config });
  const chosenId = config?.id ?? configId;
  const versions = useQuery({ ...configQueries.versions(orgId, chosenId), enabled: open && !config && chosenId !== "" });
  const summary = useQuery({ ...gatewayQueries.summary(orgId), enabled: open && !target && kind === "all" });

  const close = (next: boolean) => {
    if (!next) {
      create.reset();
      setFormError(null);
    }
    onOpenChange(next);
  };

  const chosenVersion = config?.version ?? version ?? versions.data?.items[0]?.version ?? null;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    if (!chosenId) return setFormError("Choose a configuration template");
    if (chosenVersion === null) return setFormError("The template has no version yet: add one first");
    let choice: TargetChoice;
    if (target) choice = target.choice;
    else if (kind === "selector") {
      if (!selector.trim()) return setFormError("Type a label selector, e.g. env=prod");
      choice = { kind: "selector", selector };
    } else if (kind === "gateways") {
      if (picked.size === 0) return setFormError("Pick at least one agent");
      choice = { kind: "gateways", ids: [...picked.keys()] };
    } else choice = { kind: "all" };
    let strategy: DeploymentCreate["strategy"] = { type: "all-at-once" };
    if (staged) {
      const parsed = parseBatches(batches);
      if (!parsed.ok) return setFormError(parsed.error);
      strategy = {
        type: "staged",
        batches: parsed.batches,
        max_failed: maxFailed,
        batch_timeout_seconds: timeout,
        canary_selector: canary.trim() || null,
      };
    }
    create.mutate(
      {
        config_id: chosenId,
        version: chosenVersion,
        target: targetBody(choice),
        strategy,
        auto_rollback: autoRollback,
        message: message.trim() || null,
      },
      {
        onSuccess: (deployment) => {
          close(false);
          onCreated(deployment);
        },
      },
    );
  };

  const refused = create.isError ? validationFromError(create.error) : null;
  const title = config ? `Deploy ${config.name} v${config.version}` : "Deploy a configuration";

  return (
    <Dialog open={open} onOpenChange={close} title={title} wide description={target ? `To ${target.description}.` : undefined}>
      <form className="form" onSubmit={submit} aria-label="Deploy">
        {!config && (
          <div className="form__row">
            <label className="field">
              <span>Template</span>
              <select
                value={configId}
                required
                onChange={(e) => {
                  setConfigId(e.target.value);
                  setVersion(null);
                }}
              >
                <option value="">Choose a template…</option>
                {(templates.data ?? []).map((t) => (
                  <option key={t.id} value={t.id} disabled={t.latest_version === null}>
                    {t.name}
                    {t.latest_version === null ? " (no versions)" : ""}
                  </option>
                ))}
              </select>
            </label>
            <label className="field">
              <span>Version</span>
              <select
                value={chosenVersion ?? ""}
                disabled={!versions.data}
                onChange={(e) => setVersion(Number(e.target.value))}
              >
                {(versions.data?.items ?? []).map((v) => (
                  <option key={v.version} value={v.version}>
                    v{v.version}
                    {v.message ? ` — ${v.message}` : ""}
                  </option>
                ))}
              </select>
            </label>
          </div>
        )}

        {!target && (
          <fieldset className="fieldset">
            <legend>Target</legend>
            <div className="radios">
              {(
                [
                  ["selector", "Label selector"],
                  ["gateways", "Specific agents"],
                  ["all", "All agents"],
                ] as const
              ).map(([value, label]) => (
                <label key={value} className="checkbox">
                  <input type="radio" name={`${uid}-target`} checked={kind === value} onChange={() => setKind(value)} />
                  <span>{label}</span>
                </label>
              ))}
            </div>
            {kind === "selector" && (
              <div className="field">
                <label htmlFor={`${uid}-selector`}>Selector</label>
                <input
                  id={`${uid}-selector`}
                  className="mono"
                  value={selector}
                  placeholder="env=prod, region in (eu-west, us-east)"
                  aria-describedby={`${uid}-count`}
                  onChange={(e) => setSelector(e.target.value)}
                />
                <SelectorCount orgId={orgId} selector={selector} id={`${uid}-count`} />
              </div>
            )}
            {kind === "gateways" && <AgentPicker orgId={orgId} picked={picked} onChange={setPicked} />}
            {kind === "all" && (
              <p className="field__hint" role="status">
                {summary.data ? `Every agent of the organisation: ${plural(summary.data.total, "agent")}` : "Every agent of the organisation"}
              </p>
            )}
          </fieldset>
        )}

        <fieldset className="fieldset">
          <legend>Strategy</legend>
          <div className="radios">
            <label className="checkbox">
              <input type="radio" name={`${uid}-strategy`} checked={!staged} onChange={() => setStaged(false)} />
              <span>All at once</span>
            </label>
            <label className="checkbox">
              <input type="radio" name={`${uid}-strategy`} checked={staged} onChange={() => setStaged(true)} />
              <span>Staged</span>
            </label>
          </div>
          {staged && (
            <>
              <div className="form__row form__row--3">
                <label className="field">
                  <span>Batches (cumulative)</span>
                  <input className="mono" value={batches} onChange={(e) => setBatches(e.target.value)} placeholder="1, 10%, 50%, 100%" />
                </label>
                <label className="field">
                  <span>Failures tolerated</span>
                  <input type="number" min={0} value={maxFailed} onChange={(e) => setMaxFailed(Number(e.target.value))} />
                </label>
                <label className="field">
                  <span>Batch timeout (s)</span>
                  <input type="number" min={1} max={604800} value={timeout} onChange={(e) => setTimeoutSeconds(Number(e.target.value))} />
                </label>
              </div>
              <div className="field">
                <label htmlFor={`${uid}-canary-input`}>Canary selector (first batch)</label>
                <input
                  id={`${uid}-canary-input`}
                  className="mono"
                  value={canary}
                  placeholder="ring=canary"
                  aria-describedby={`${uid}-canary`}
                  onChange={(e) => setCanary(e.target.value)}
                />
                <SelectorCount orgId={orgId} selector={canary} id={`${uid}-canary`} />
              </div>
            </>
          )}
          <label className="checkbox">
            <input type="checkbox" checked={autoRollback} onChange={(e) => setAutoRollback(e.target.checked)} />
            <span>Roll back automatically when the rollout fails</span>
          </label>
        </fieldset>

        <label className="field">
          <span>Message (optional)</span>
          <input value={message} maxLength={1000} placeholder="Why this deployment" onChange={(e) => setMessage(e.target.value)} />
        </label>

        {formError && (
          <p className="notice notice--error" role="alert">
            {formError}
          </p>
        )}
        {create.isError &&
          (refused && refused.errors.length > 0 ? (
            <ValidationErrors errors={refused.errors} title={refused.message ?? "The configuration is not valid"} />
          ) : (
            <p className="notice notice--error" role="alert">
              {errorMessage(create.error)}
            </p>
          ))}
        <div className="dialog__footer">
          <button type="button" className="btn" onClick={() => close(false)}>
            Cancel
          </button>
          <button type="submit" className="btn btn--primary" disabled={create.isPending}>
            {create.isPending ? "Deploying…" : "Deploy"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
