import { memo, type KeyboardEvent, type MouseEvent } from "react";
import { Link, useNavigate } from "react-router";
import { HealthIndicator } from "@/components/HealthIndicator";
import { LabelChips } from "@/components/LabelChips";
import { RelativeTime } from "@/components/RelativeTime";
import { StatusBadge } from "@/components/StatusBadge";
import type { Gateway } from "../api/gateways";
import { transportLabel } from "../lib/selector";

interface Props {
  orgId: string;
  gateways: Gateway[];
  selectable: boolean;
  selected: ReadonlySet<string>;
  allMatching: boolean;
  onToggle: (gateway: Gateway) => void;
  onTogglePage: (select: boolean) => void;
  onPickLabel: (key: string, value: string) => void;
}

function isInteractive(target: EventTarget | null): boolean {
  return target instanceof Element && target.closest("a, button, input, label, select") !== null;
}

/**
 * The fleet table. Rows are focusable: Enter or a click opens the agent, arrow keys move
 * between rows, Space toggles the selection.
 */
export function AgentTable({ orgId, gateways, selectable, selected, allMatching, onToggle, onTogglePage, onPickLabel }: Props) {
  const navigate = useNavigate();
  const allOnPage = gateways.length > 0 && gateways.every((g) => selected.has(g.id));
  const someOnPage = gateways.some((g) => selected.has(g.id));
  const open = (g: Gateway) => navigate(`/orgs/${orgId}/agents/${g.id}`);

  const onKey = (e: KeyboardEvent<HTMLTableRowElement>, g: Gateway) => {
    if (isInteractive(e.target) && e.target !== e.currentTarget) return;
    if (e.key === "Enter") open(g);
    else if (e.key === " " && selectable) {
      e.preventDefault();
      onToggle(g);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const row = e.key === "ArrowDown" ? e.currentTarget.nextElementSibling : e.currentTarget.previousElementSibling;
      (row as HTMLElement | null)?.focus();
    }
  };
  const onClick = (e: MouseEvent, g: Gateway) => {
    if (!isInteractive(e.target) && !window.getSelection()?.toString()) open(g);
  };

  return (
    <div className="table-wrap">
      <table className="table table--agents" aria-label="Agents">
        <thead>
          <tr>
            {selectable && (
              <th className="table__check">
                <input
                  type="checkbox"
                  aria-label="Select all agents on this page"
                  checked={allMatching || allOnPage}
                  ref={(el) => {
                    if (el) el.indeterminate = !allMatching && someOnPage && !allOnPage;
                  }}
                  onChange={(e) => onTogglePage(e.target.checked)}
                />
              </th>
            )}
            <th>Name</th>
            <th>Instance ID</th>
            <th>Status</th>
            <th>Health</th>
            <th>Last seen</th>
            <th>Version</th>
            <th>Labels</th>
            <th>Transport</th>
            <th className="num">Config</th>
          </tr>
        </thead>
        <tbody>
          {gateways.map((g) => (
            <AgentRow
              key={g.id}
              orgId={orgId}
              gateway={g}
              selectable={selectable}
              checked={allMatching || selected.has(g.id)}
              disabled={allMatching}
              onToggle={onToggle}
              onKey={onKey}
              onClick={onClick}
              onPickLabel={onPickLabel}
            />
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface RowProps {
  orgId: string;
  gateway: Gateway;
  selectable: boolean;
  checked: boolean;
  disabled: boolean;
  onToggle: (g: Gateway) => void;
  onKey: (e: KeyboardEvent<HTMLTableRowElement>, g: Gateway) => void;
  onClick: (e: MouseEvent, g: Gateway) => void;
  onPickLabel: (key: string, value: string) => void;
}

// Memoised: a live event for one gateway re-renders one row, not the page.
const AgentRow = memo(function AgentRow({ orgId, gateway: g, selectable, checked, disabled, onToggle, onKey, onClick, onPickLabel }: RowProps) {
  return (
    <tr
      tabIndex={0}
      className={checked ? "is-selected" : undefined}
      data-gateway-id={g.id}
      onKeyDown={(e) => onKey(e, g)}
      onClick={(e) => onClick(e, g)}
    >
      {selectable && (
        <td className="table__check">
          <input type="checkbox" aria-label={`Select ${g.name}`} checked={checked} disabled={disabled} onChange={() => onToggle(g)} />
        </td>
      )}
      <td className="table__name">
        <Link to={`/orgs/${orgId}/agents/${g.id}`} tabIndex={-1}>
          {g.name}
        </Link>
        {g.hostname && <span className="table__sub">{g.hostname}</span>}
      </td>
      <td className="mono table__truncate" title={g.instance_id}>
        {g.instance_id}
      </td>
      <td>
        <StatusBadge status={g.status} />
      </td>
      <td>
        <HealthIndicator health={g.health.status} score={g.health.health_score} />
      </td>
      <td className="nowrap">
        <RelativeTime iso={g.last_seen} />
      </td>
      <td className="mono">{g.agent_version ?? <span className="muted">—</span>}</td>
      <td>
        <LabelChips labels={g.labels} onPick={onPickLabel} max={3} />
      </td>
      <td className="nowrap">{transportLabel(g.transport)}</td>
      <td className="num mono">{g.current_config_version ?? <span className="muted">—</span>}</td>
    </tr>
  );
});
