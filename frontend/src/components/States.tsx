import type { ReactNode } from "react";
import { errorMessage } from "@/lib/api-client";

export function Skeleton({ rows = 6, columns = 6 }: { rows?: number; columns?: number }) {
  return (
    <div className="skeleton" aria-busy="true" aria-label="Loading">
      {Array.from({ length: rows }, (_, r) => (
        <div className="skeleton__row" key={r}>
          {Array.from({ length: columns }, (_, c) => (
            <span className="skeleton__cell" key={c} style={{ width: `${40 + ((r * 7 + c * 13) % 50)}%` }} />
          ))}
        </div>
      ))}
    </div>
  );
}

export function EmptyState({ title, children, action }: { title: string; children?: ReactNode; action?: ReactNode }) {
  return (
    <div className="empty" role="status">
      <h3 className="empty__title">{title}</h3>
      {children && <p className="empty__text">{children}</p>}
      {action && <div className="empty__action">{action}</div>}
    </div>
  );
}

export function ErrorState({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  return (
    <div className="notice notice--error error-state" role="alert">
      <span>{errorMessage(error)}</span>
      {onRetry && (
        <button type="button" className="btn btn--small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}
