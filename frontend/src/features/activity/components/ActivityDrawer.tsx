import * as RadixDialog from "@radix-ui/react-dialog";
import { Link } from "react-router";
import { RelativeTime } from "@/components/RelativeTime";
import type { LiveState } from "@/lib/live-state";
import { activityFeed, describeEvent, useActivity } from "../api/feed";

const STATE_TEXT: Record<LiveState, string> = {
  live: "Live: events arrive as they happen",
  connecting: "Connecting to live events…",
  down: "Live events unavailable; refreshing every 8 s",
};

/** The activity feed: registrations, status changes, deactivations and config changes, newest first. */
export function ActivityDrawer({
  orgId,
  open,
  onOpenChange,
  liveState,
  nameOf,
}: {
  orgId: string;
  open: boolean;
  onOpenChange: (open: boolean) => void;
  liveState: LiveState;
  /** The gateway's current name, when the page knows it (events carry only ids). */
  nameOf: (gatewayId: string) => string | null;
}) {
  const entries = useActivity();
  return (
    <RadixDialog.Root open={open} onOpenChange={onOpenChange}>
      <RadixDialog.Portal>
        <RadixDialog.Overlay className="drawer__overlay" />
        <RadixDialog.Content className="drawer" aria-describedby={undefined}>
          <header className="drawer__header">
            <RadixDialog.Title className="dialog__title">Activity</RadixDialog.Title>
            <span className="card__spacer" />
            {entries.length > 0 && (
              <button type="button" className="btn btn--ghost btn--small" onClick={() => activityFeed.clear()}>
                Clear
              </button>
            )}
            <RadixDialog.Close className="btn btn--ghost btn--icon" aria-label="Close">
              ×
            </RadixDialog.Close>
          </header>
          <p className={`drawer__state live live--${liveState}`}>
            <span className="live__dot" aria-hidden="true" />
            {STATE_TEXT[liveState]}
          </p>
          {entries.length === 0 ? (
            <p className="empty__text drawer__empty">
              Nothing yet. Registrations, health changes, deactivations and configuration changes appear here while this page
              is open.
            </p>
          ) : (
            <ol className="feed" aria-label="Activity feed">
              {entries.map((entry) => {
                const e = { ...entry, ...describeEvent(entry.event, (entry.gatewayId && nameOf(entry.gatewayId)) || entry.name) };
                return (
                <li key={e.id} className={`feed__item feed__item--${e.tone}`}>
                  <span className="feed__dot" aria-hidden="true" />
                  <div className="feed__body">
                    <div className="feed__title">
                      {e.gatewayId && e.type !== "gateway.deleted" ? (
                        <Link to={`/orgs/${orgId}/agents/${e.gatewayId}`} onClick={() => onOpenChange(false)}>
                          {e.title}
                        </Link>
                      ) : (
                        e.title
                      )}
                    </div>
                    <div className="feed__meta">
                      <RelativeTime iso={new Date(e.at).toISOString()} />
                      {e.detail && <> · {e.detail}</>}
                    </div>
                  </div>
                </li>
                );
              })}
            </ol>
          )}
        </RadixDialog.Content>
      </RadixDialog.Portal>
    </RadixDialog.Root>
  );
}
