const TONE: Record<string, string> = {
  active: "good",
  registered: "info",
  inactive: "muted",
  error: "bad",
};

/** The gateway's lifecycle status (registered, active, inactive, error). */
export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge--${TONE[status] ?? "muted"}`}>{status}</span>;
}
