import { useState } from "react";
import { CopyButton } from "@/components/CopyButton";
import { Dialog } from "@/components/Dialog";
import type { CreatedToken } from "../api/tokens";
import { dockerRun, extensionYaml, supervisorYaml } from "../lib/snippets";

function Snippet({ title, text }: { title: string; text: string }) {
  return (
    <div className="snippet">
      <div className="snippet__header">
        <span>{title}</span>
        <CopyButton text={text} label="Copy" />
      </div>
      <pre className="snippet__code">{text}</pre>
    </div>
  );
}

const TABS = [
  ["docker", "Gateway image"],
  ["supervisor", "OpAMP supervisor"],
  ["extension", "OpAMP extension"],
] as const;

/** The plain token, shown once, with the exact lines that use it. */
export function TokenCreatedDialog({ token, onClose }: { token: CreatedToken | null; onClose: () => void }) {
  const [tab, setTab] = useState<(typeof TABS)[number][0]>("docker");
  const origin = window.location.origin;
  const secret = token?.token ?? "";
  return (
    <Dialog
      open={token !== null}
      onOpenChange={(o) => !o && onClose()}
      wide
      title={`Token “${token?.name ?? ""}” created`}
      description="Copy it now: FlowGate keeps only its digest and cannot show it again."
      footer={
        <button type="button" className="btn btn--primary" onClick={onClose}>
          I have copied it
        </button>
      }
    >
      <div className="secret">
        <code className="secret__value" aria-label="Registration token">
          {secret}
        </code>
        <CopyButton text={secret} label="Copy token" className="btn--primary" />
      </div>
      <div className="segmented" role="tablist" aria-label="How to use it">
        {TABS.map(([key, label]) => (
          <button key={key} type="button" role="tab" aria-selected={tab === key} className="segmented__item" onClick={() => setTab(key)}>
            {label}
          </button>
        ))}
      </div>
      {tab === "docker" && (
        <>
          <p className="muted">
            The image is built from <code>gateway/</code> in the FlowGate repository:{" "}
            <code>docker build -t flowgate-gateway gateway/</code>
          </p>
          <Snippet title="REST mode (the gateway image's default)" text={dockerRun(origin, secret)} />
          <Snippet title="Native OpAMP through the supervisor" text={dockerRun(origin, secret, "supervisor")} />
        </>
      )}
      {tab === "supervisor" && (
        <Snippet
          title="supervisor.yaml — the supervisor swaps the registration token for the gateway's own OpAMP token"
          text={supervisorYaml(origin, secret)}
        />
      )}
      {tab === "extension" && <Snippet title="Collector configuration with the opamp extension (reporting only)" text={extensionYaml(origin, secret)} />}
    </Dialog>
  );
}
