/**
 * The retry policy of one send: up to `attempts` tries, transient failures
 * only (the caller's `retry` decides), each wait drawn with full jitter from
 * [0, ceiling), the ceiling doubling from `baseDelayMs` up to `maxDelayMs`.
 *
 * Why by hand: the waits must not keep the process alive (a program that is
 * done exits, and its `exit` handler spools what is still unacknowledged);
 * exponential-backoff, which this replaced, waits on a referenced timer and
 * takes no timer of ours.
 */
export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Whether a failure is worth another try (also where a caller counts and logs it). */
  retry: (error: unknown) => boolean;
}

/** The wait before retry `n` (1 for the first retry). */
export function retryDelayMs(n: number, policy: Pick<RetryPolicy, "baseDelayMs" | "maxDelayMs">): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
  return Math.random() * ceiling;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export async function withRetries<T>(attempt: () => Promise<T>, policy: RetryPolicy): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (n >= policy.attempts || !policy.retry(error)) throw error;
      await sleep(retryDelayMs(n, policy));
    }
  }
}
