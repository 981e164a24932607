export function Logo({ compact = false }: { compact?: boolean }) {
  return (
    <span className="logo" aria-label="FlowGate">
      <svg width="22" height="22" viewBox="0 0 24 24" aria-hidden="true">
        <rect x="2" y="2" width="20" height="20" rx="5" fill="var(--accent)" />
        <path d="M7 8h10M7 12h6M7 16h8" stroke="var(--accent-contrast)" strokeWidth="2" strokeLinecap="round" />
      </svg>
      {!compact && <span className="logo__text">FlowGate</span>}
    </span>
  );
}
