import { useState, type FormEvent } from "react";
import { Dialog } from "@/components/Dialog";
import { errorMessage } from "@/lib/api-client";
import { useCreateTemplate, type ConfigTemplate } from "../api/configs";

/** Name (unique in the organisation) and description; hands the new template to `onCreated`. */
export function CreateTemplateDialog({
  orgId,
  open,
  onOpenChange,
  onCreated,
}: {
  orgId: string;
  open: boolean;
  onOpenChange: (open: boolean) => void;
  onCreated: (template: ConfigTemplate) => void;
}) {
  const create = useCreateTemplate(orgId);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { name: name.trim(), description: description.trim() || null },
      {
        onSuccess: (t) => {
          setName("");
          setDescription("");
          create.reset();
          onOpenChange(false);
          onCreated(t);
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
      title="Create a configuration template"
      description="A template holds numbered, immutable versions of one collector configuration."
    >
      <form className="form" onSubmit={submit}>
        <label className="field">
          <span>Name</span>
          <input required maxLength={200} value={name} placeholder="edge-pipeline" onChange={(e) => setName(e.target.value)} />
        </label>
        <label className="field">
          <span>Description (optional)</span>
          <input maxLength={2000} value={description} placeholder="OTLP in, batch, export to the backend" onChange={(e) => setDescription(e.target.value)} />
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
            {create.isPending ? "Creating…" : "Create template"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
