import { useState, type FormEvent } from "react";
import { Dialog } from "@/components/Dialog";
import { errorMessage } from "@/lib/api-client";
import { useCreateToken, type CreatedToken } from "../api/tokens";

/** Name, expiry and uses; on success hands the created token (with its secret) to `onCreated`. */
export function CreateTokenDialog({
  orgId,
  open,
  onOpenChange,
  onCreated,
}: {
  orgId: string;
  open: boolean;
  onOpenChange: (open: boolean) => void;
  onCreated: (token: CreatedToken) => void;
}) {
  const create = useCreateToken(orgId);
  const [name, setName] = useState("");
  const [days, setDays] = useState(30);
  const [unlimited, setUnlimited] = useState(false);
  const [maxUses, setMaxUses] = useState(1);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { name: name.trim(), expires_in_days: days, max_uses: unlimited ? null : maxUses },
      {
        onSuccess: (token) => {
          setName("");
          create.reset();
          onOpenChange(false);
          onCreated(token);
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
      title="Create a registration token"
      description="Gateways and collectors enrol with it. It is shown once, right after you create it."
    >
      <form className="form" onSubmit={submit}>
        <label className="field">
          <span>Name</span>
          <input required maxLength={200} value={name} placeholder="edge-eu-west fleet" onChange={(e) => setName(e.target.value)} />
        </label>
        <div className="form__row">
          <label className="field">
            <span>Expires after (days)</span>
            <input type="number" min={1} max={3650} required value={days} onChange={(e) => setDays(Number(e.target.value))} />
          </label>
          <label className="field">
            <span>Maximum uses</span>
            <input
              type="number"
              min={1}
              max={1000000}
              required={!unlimited}
              disabled={unlimited}
              value={unlimited ? "" : maxUses}
              onChange={(e) => setMaxUses(Number(e.target.value))}
            />
          </label>
        </div>
        <label className="checkbox">
          <input type="checkbox" checked={unlimited} onChange={(e) => setUnlimited(e.target.checked)} />
          <span>Unlimited uses (one token for a whole fleet)</span>
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
            {create.isPending ? "Creating…" : "Create token"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
