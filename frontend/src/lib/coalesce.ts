/**
 * Runs each keyed task at most once per `delayMs`: a burst of 500 events asking to refetch the
 * same list costs one request. The first call schedules, later calls in the window are folded in.
 */
export function createCoalescer(delayMs: number) {
  const pending = new Map<string, ReturnType<typeof setTimeout>>();
  return {
    schedule(key: string, task: () => void, delay: number = delayMs): void {
      if (pending.has(key)) return;
      pending.set(
        key,
        setTimeout(() => {
          pending.delete(key);
          task();
        }, delay),
      );
    },
    cancelAll(): void {
      for (const t of pending.values()) clearTimeout(t);
      pending.clear();
    },
  };
}
export type Coalescer = ReturnType<typeof createCoalescer>;
