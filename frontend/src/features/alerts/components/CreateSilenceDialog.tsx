import { useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Dialog } from "@/components/Dialog";
import { errorMessage } from "@/lib/api-client";
import { alertQueries, useCreateSilence } from "../api/alerts";
import { silenceEnd } from "../lib/rules";

const DURATIONS = [
  [1, "1 hour"],
  [4, "4 hours"],
  [24, "1 day"],
  [72, "3 days"],
  [168, "1 week"],
] as const;

/** A silence from now for a chosen time, matching a rule and/or a label selector. */
export function CreateSilenceDialog({
  orgId,
  open,
  onOpenChange,
  ruleId = "",
  selector: initialSelector = "",
}: {
  orgId: string;
  open: boolean;
  onOpenChange: (open: boolean) => void;
  ruleId?: string;
  selector?: string;
}) {
  const rules = useQuery({ ...alertQueries.rules(orgId), enabled: open });
  const create = useCreateSilence(orgId);
  const [rule, setRule] = useState(ruleId);
  const [selector, setSelector] = useState(initialSelector);
  const [comment, setComment] = useState("");
  const [hours, setHours] = useState<number>(4);
  const [seeded, setSeeded] = useState({ ruleId, initialSelector, open });
  // Opening the dialog for another alert starts from that alert's rule and labels.
  if (seeded.open !== open || seeded.ruleId !== ruleId || seeded.initialSelector !== initialSelector) {
    setSeeded({ ruleId, initialSelector, open });
    if (open) {
      setRule(ruleId);
      setSelector(initialSelector);
      setComment("");
    }
  }

  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      {
        rule_id: rule || null,
        // No rule: the selector is the matcher, and an empty one matches every alert.
        selector: selector.trim() !== "" ? selector.trim() : rule ? null : "",
        comment: comment.trim() || null,
        ends_at: silenceEnd(Date.now(), hours),
      },
      {
        onSuccess: () => {
          create.reset();
          onOpenChange(false);
        },
      },
    );
  };

  return (
    <Dialog
      open={open}
      onOpenChange={(o) => {
        if (!o) create.reset();
        onOpenChange(o);
      }}
      title="Create a silence"
      description="Matching alerts are still recorded, but no one is notified until the silence ends."
    >
      <form className="form" onSubmit={submit}>
        <label className="field">
          <span>Rule</span>
          <select value={rule} onChange={(e) => setRule(e.target.value)}>
            <option value="">Any rule</option>
            {(rules.data ?? []).map((r) => (
              <option key={r.id} value={r.id}>
                {r.name}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Alert labels (selector{rule ? ", optional" : "; empty: every alert"})</span>
          <input className="mono" value={selector} placeholder="env=prod, region in (eu)" onChange={(e) => setSelector(e.target.value)} />
        </label>
        <div className="form__row">
          <label className="field">
            <span>For</span>
            <select value={hours} onChange={(e) => setHours(Number(e.target.value))}>
              {DURATIONS.map(([h, label]) => (
                <option key={h} value={h}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span>Comment</span>
            <input maxLength={1000} value={comment} placeholder="maintenance window" onChange={(e) => setComment(e.target.value)} />
          </label>
        </div>
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
            {create.isPending ? "Creating…" : "Create silence"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
