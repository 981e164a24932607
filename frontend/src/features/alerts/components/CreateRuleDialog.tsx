import { useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Link } from "react-router";
import { Dialog } from "@/components/Dialog";
import { errorMessage } from "@/lib/api-client";
import { alertQueries, useCreateRule, type RuleKind } from "../api/alerts";
import { KIND_ORDER, KINDS, ruleBody, type RuleForm } from "../lib/rules";

const EMPTY: RuleForm = { name: "", kind: "gateway_unhealthy", threshold: "", selector: "", channelIds: [], enabled: true };

/** Name, what to watch (kind + its one threshold + selector) and where to send it. */
export function CreateRuleDialog({ orgId, open, onOpenChange }: { orgId: string; open: boolean; onOpenChange: (open: boolean) => void }) {
  const channels = useQuery({ ...alertQueries.channels(orgId), enabled: open });
  const create = useCreateRule(orgId);
  const [form, setForm] = useState<RuleForm>(EMPTY);
  const info = KINDS[form.kind];
  const set = (patch: Partial<RuleForm>) => setForm((f) => ({ ...f, ...patch }));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(ruleBody(form), {
      onSuccess: () => {
        setForm(EMPTY);
        create.reset();
        onOpenChange(false);
      },
    });
  };

  return (
    <Dialog
      open={open}
      onOpenChange={(o) => {
        if (!o) create.reset();
        onOpenChange(o);
      }}
      title="Create an alert rule"
      description="Checked by the server every 30 s (by default); each match is one alert, notified once when it fires and once when it resolves."
    >
      <form className="form" onSubmit={submit}>
        <label className="field">
          <span>Name</span>
          <input required maxLength={200} value={form.name} placeholder="prod gateways down" onChange={(e) => set({ name: e.target.value })} />
        </label>
        <label className="field">
          <span>When</span>
          <select value={form.kind} onChange={(e) => set({ kind: e.target.value as RuleKind, threshold: "" })}>
            {KIND_ORDER.map((k) => (
              <option key={k} value={k}>
                {KINDS[k].label}
              </option>
            ))}
          </select>
        </label>
        <div className="form__row">
          <label className="field">
            <span>{info.paramLabel}</span>
            <input
              type="number"
              step="any"
              min={info.min}
              max={info.max}
              required={info.default === null}
              value={form.threshold}
              placeholder={info.default === null ? "" : `${info.default} (default)`}
              onChange={(e) => set({ threshold: e.target.value })}
            />
          </label>
          {info.selector && (
            <label className="field">
              <span>Gateways (selector; empty: all)</span>
              <input className="mono" value={form.selector} placeholder="env=prod" onChange={(e) => set({ selector: e.target.value })} />
            </label>
          )}
        </div>
        <fieldset className="field">
          <legend>Notify</legend>
          {channels.data?.length === 0 ? (
            <p className="muted">
              No notification channels yet: the rule's alerts are only listed.{" "}
              <Link to={`/orgs/${orgId}/alerts/channels`} onClick={() => onOpenChange(false)}>
                Add a webhook
              </Link>
            </p>
          ) : (
            <div className="channel-picks">
              {(channels.data ?? []).map((c) => (
                <label key={c.id} className="checkbox">
                  <input
                    type="checkbox"
                    checked={form.channelIds.includes(c.id)}
                    onChange={(e) =>
                      set({ channelIds: e.target.checked ? [...form.channelIds, c.id] : form.channelIds.filter((id) => id !== c.id) })
                    }
                  />
                  <span>{c.name}</span>
                </label>
              ))}
            </div>
          )}
        </fieldset>
        <label className="checkbox">
          <input type="checkbox" checked={form.enabled} onChange={(e) => set({ enabled: e.target.checked })} />
          <span>Enabled</span>
        </label>
        {create.isError && (
          <p className="notice notice--error" role="alert">
            {errorMessage(create.error)}
          </p>
        )}
        <div className="dialog__footer">
          <button type="button" className="btn" onClick={() => onOpenChange(false)}>
            Cancel
          </button>
          <button type="submit" className="btn btn--primary" disabled={create.isPending}>
            {create.isPending ? "Creating…" : "Create rule"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
