import { useNow } from "@/lib/clock";
import { formatRelative, formatTimestamp } from "@/lib/time";

/** "15 s ago", re-rendered every second from the shared clock; the exact time on hover. */
export function RelativeTime({ iso }: { iso: string | null | undefined }) {
  const now = useNow();
  if (!iso) return <span className="muted">never</span>;
  return (
    <time dateTime={iso} title={formatTimestamp(iso)}>
      {formatRelative(iso, now)}
    </time>
  );
}
