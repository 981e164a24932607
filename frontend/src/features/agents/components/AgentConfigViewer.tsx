import { useMemo, useState } from "react";
import { CopyButton } from "@/components/CopyButton";
import { RelativeTime } from "@/components/RelativeTime";
import type { Schemas } from "@/lib/api-client";
import { diffLines } from "../lib/diff";
import { YamlView } from "./YamlView";

function DriftView({ desired, effective }: { desired: string; effective: string }) {
  const lines = useMemo(() => diffLines(desired, effective), [desired, effective]);
  if (!lines) return <p className="muted">The configurations are too large to compare here; download both instead.</p>;
  return (
    <pre className="yaml diff" aria-label="Changes from desired to effective" tabIndex={0}>
      <code>
        {lines.map((line, i) => (
          <span key={i} className={`yaml__line diff__${line.kind}`}>
            <span className="yaml__gutter" aria-hidden="true">
              {line.kind === "added" ? "+" : line.kind === "removed" ? "−" : ""}
            </span>
            <span className="sr-only">{line.kind === "same" ? "" : `${line.kind}: `}</span>
            {line.text}
            {"\n"}
          </span>
        ))}
      </code>
    </pre>
  );
}

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
  const [tab, setTab] = useState<"desired" | "effective" | "changes">("desired");
  const shown = tab === "effective" && config.effective ? config.effective.config_yaml : config.config_yaml;
  const drift = hasDrift(config);
  const tabs = [
    ["desired", "Desired"],
    ["effective", "Effective"],
    ...(drift ? [["changes", "Changes"] as const] : []),
  ] as const;
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
            {tabs.map(([t, label]) => (
              <button key={t} type="button" role="tab" aria-selected={tab === t} className="segmented__item" onClick={() => setTab(t)}>
                {label}
              </button>
            ))}
          </div>
        )}
        {tab !== "changes" && (
          <>
            <CopyButton text={shown} label="Copy" />
            <button type="button" className="btn btn--small" onClick={() => download(fileName, shown)}>
              Download
            </button>
          </>
        )}
      </header>
      {status?.error_message && (
        <p className="notice notice--error" role="alert">
          {status.error_message}
        </p>
      )}
      {tab === "changes" && config.effective ? (
        <DriftView desired={config.config_yaml} effective={config.effective.config_yaml} />
      ) : (
        <YamlView text={shown} label={`${tab === "effective" ? "Effective" : "Desired"} configuration`} />
      )}
      <footer className="card__footer muted">
        {tab === "changes" ? (
          <>Lines marked + are in the effective configuration only, − in the desired one only.</>
        ) : tab === "effective" && config.effective ? (
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
