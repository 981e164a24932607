/**
 * Runs one action over many gateways with bounded concurrency, reporting progress. Items come
 * from an array (the selected rows) or an async iterator (every page of the current filter),
 * so "all 10 000 matching" never holds more than one page in memory.
 */
export interface BulkProgress {
  done: number;
  updated: number;
  unchanged: number;
  failed: number;
  /** The first few failures, "name: server message". */
  errors: string[];
}

export type BulkOutcome = "updated" | "unchanged";

export async function runBulk<T>(
  items: Iterable<T> | AsyncIterable<T>,
  action: (item: T) => Promise<BulkOutcome>,
  options: {
    concurrency?: number;
    describe?: (item: T) => string;
    onProgress?: (progress: BulkProgress) => void;
    signal?: AbortSignal;
  } = {},
): Promise<BulkProgress> {
  const progress: BulkProgress = { done: 0, updated: 0, unchanged: 0, failed: 0, errors: [] };
  const limit = Math.max(1, options.concurrency ?? 4);
  const running = new Set<Promise<void>>();
  const report = () => options.onProgress?.({ ...progress, errors: [...progress.errors] });

  const one = async (item: T) => {
    try {
      const outcome = await action(item);
      progress[outcome] += 1;
    } catch (error) {
      progress.failed += 1;
      if (progress.errors.length < 5) {
        const what = options.describe?.(item) ?? "item";
        progress.errors.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    progress.done += 1;
    report();
  };

  for await (const item of items as AsyncIterable<T>) {
    if (options.signal?.aborted) break;
    const task: Promise<void> = one(item).finally(() => running.delete(task));
    running.add(task);
    if (running.size >= limit) await Promise.race(running);
  }
  await Promise.all(running);
  return progress;
}

/** "37 updated, 0 failed" (plus unchanged ones when there were any). */
export function summarize(progress: BulkProgress, verb = "updated"): string {
  const parts = [`${progress.updated} ${verb}`];
  if (progress.unchanged) parts.push(`${progress.unchanged} unchanged`);
  parts.push(`${progress.failed} failed`);
  return parts.join(", ");
}
