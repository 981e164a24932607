import { useState } from "react";
import { CopyButton } from "@/components/CopyButton";
import { RelativeTime } from "@/components/RelativeTime";
import type { Schemas } from "@/lib/api-client";
import { YamlView } from "./YamlView";

type Config = Schemas["ConfigOut"];

/** Desired and effective differ in substance (not in trailing white space). */
export function hasDrift(config: Config): boolean {
  const effective = config.effective?.config_yaml;
  if (effective === undefined || effective === null) return false;
  const tidy = (s: string) => s.replace(/[ \t]+$/gm, "").trim();
  return tidy(effective) !== tidy(config.config_yaml);
}

function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/yaml" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/**
 * The agent's configuration: what FlowGate wants it to run (desired: the pushed version or the
 * base config) and, for OpAMP agents, what it reports running (effective), with a drift badge
 * when the two differ.
 */
export function AgentConfigViewer({ config, agentName }: { config: Config; agentName: string }) {
  const hasEffective = Boolean(config.effective);
  const [tab, setTab] = useState<"desired" | "effective">("desired");
  const shown = tab === "effective" && config.effective ? config.effective.config_yaml : config.config_yaml;
  const drift = hasDrift(config);
  const fileName = `${agentName.replace(/[^A-Za-z0-9._-]+/g, "-")}-${tab}.yaml`;
  const status = config.remote_config_status;

  return (
    <section className="card" aria-labelledby="config-title">
      <header className="card__header">
        <h2 id="config-title" className="card__title">
          Configuration
        </h2>
        <span className="badge badge--muted">{config.source === "remote" ? `version ${config.config_version}` : "base config"}</span>
        {drift && (
          <span className="badge badge--warn" title="The effective configuration differs from the desired one">
            drift
          </span>
        )}
        {status && (
          <span className={`badge badge--${status.status.toLowerCase().includes("fail") ? "bad" : "muted"}`}>
            {status.status.toLowerCase()}
          </span>
        )}
        <span className="card__spacer" />
        {hasEffective && (
          <div className="segmented" role="tablist" aria-label="Configuration view">
            {(["desired", "effective"] as const).map((t) => (
              <button key={t} type="button" role="tab" aria-selected={tab === t} className="segmented__item" onClick={() => setTab(t)}>
                {t === "desired" ? "Desired" : "Effective"}
              </button>
            ))}
          </div>
        )}
        <CopyButton text={shown} label="Copy" />
        <button type="button" className="btn btn--small" onClick={() => download(fileName, shown)}>
          Download
        </button>
      </header>
      {status?.error_message && (
        <p className="notice notice--error" role="alert">
          {status.error_message}
        </p>
      )}
      <YamlView text={shown} label={`${tab === "effective" ? "Effective" : "Desired"} configuration`} />
      <footer className="card__footer muted">
        {tab === "effective" && config.effective ? (
          <>
            Reported by the agent <RelativeTime iso={config.effective.updated_at} />
          </>
        ) : (
          <>
            {config.source === "remote" ? "Pushed" : "Base configuration"}
            {config.last_updated && (
              <>
                {" "}
                · updated <RelativeTime iso={config.last_updated} />
              </>
            )}
            {config.applied_config_version !== null && config.applied_config_version !== undefined && (
              <> · agent applied version {config.applied_config_version}</>
            )}
            <span className="mono"> · hash {config.config_hash.slice(0, 12)}</span>
          </>
        )}
      </footer>
    </section>
  );
}
