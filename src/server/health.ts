/**
 * What `health_check` reports: whether the store takes a committed write
 * (a full disk, a read-only or damaged file, a database refusing writes all
 * fail it), and if not, whether it still answers reads. A `SELECT 1` alone
 * says healthy while every write fails.
 *
 * One probe at a time, and its result is reused for a moment, so that
 * health checks (which need no token) cannot be turned into a write flood.
 */
import { storeFailure, withinTimeout } from "../store/failures.ts";
import type { SessionStore } from "../store/types.ts";

export const HEALTH_CACHE_MS = 1000;
/** The health table's row this tracker rewrites. */
export const HEALTH_PROBE_ROW = "tracker";

export type HealthStatus = "healthy" | "degraded" | "unavailable";

export interface HealthReport {
  status: HealthStatus;
  /** Set unless healthy: what failed, in the closed set of words of store/failures.ts (no driver text). */
  reason?: string;
}

export class HealthProbe {
  readonly #store: SessionStore;
  readonly #timeoutMs: number;
  readonly #now: () => Date;
  #last: { at: number; report: HealthReport } | undefined;
  #running: Promise<HealthReport> | undefined;

  constructor(store: SessionStore, timeoutMs: number, now: () => Date = () => new Date()) {
    this.#store = store;
    this.#timeoutMs = timeoutMs;
    this.#now = now;
  }

  check(): Promise<HealthReport> {
    if (this.#last && Date.now() - this.#last.at < HEALTH_CACHE_MS) return Promise.resolve(this.#last.report);
    this.#running ??= this.#probe().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #probe(): Promise<HealthReport> {
    // Both at once, within one timeout: the answer comes in bounded time even from a hung database.
    const [write, read] = await Promise.allSettled([
      withinTimeout(this.#store.probeWrite(HEALTH_PROBE_ROW, this.#now()), this.#timeoutMs),
      withinTimeout(this.#store.ping(), this.#timeoutMs),
    ]);
    let report: HealthReport;
    if (write.status === "fulfilled") {
      report = { status: "healthy" };
    } else if (read.status === "fulfilled") {
      report = {
        status: "degraded",
        reason: `the store answers reads but refuses writes (${storeFailure(write.reason)})`,
      };
    } else {
      report = { status: "unavailable", reason: `the store does not answer (${storeFailure(read.reason)})` };
    }
    this.#last = { at: Date.now(), report };
    return report;
  }
}
