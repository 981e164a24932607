const TONE: Record<string, string> = { healthy: "good", warning: "warn", unhealthy: "bad", offline: "muted" };

/** A coloured dot, the health state and (optionally) the score, e.g. "● healthy 100". */
export function HealthIndicator({ health, score }: { health: string; score?: number | null }) {
  return (
    <span className={`health health--${TONE[health] ?? "muted"}`}>
      <span className="health__dot" aria-hidden="true" />
      <span className="health__label">{health}</span>
      {score !== undefined && score !== null && (
        <span className="health__score" aria-label={`score ${score}`}>
          {score}
        </span>
      )}
    </span>
  );
}
