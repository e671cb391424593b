/**
 * Delivery's hold on the durable spool: opened on first need (the happy path
 * never touches the disk), re-tried a while after it could not be opened,
 * and the one place that writes events to it or counts them as lost. Every
 * event that cannot be written says so: a warning naming it and a `lost`
 * count in the metrics and in the spool itself.
 */

import type { Logger } from "../log.ts";
import type { DeliveryFailure } from "./errors.ts";
import { eventTypeOf, type Job } from "./jobs.ts";
import type { DeliveryMetrics } from "./metrics.ts";
import type { DeliveryOptions } from "./options.ts";
import { Spool, type SpoolInput } from "./spool.ts";

/** How long a spool that could not be opened is left alone: the disk may come back. */
const REOPEN_AFTER_MS = 10_000;

export interface SpoolAccessOptions {
  options: DeliveryOptions;
  log: Logger;
  metrics: DeliveryMetrics;
  /** Told after events were written, so a drain can be planned. */
  onWritten?: () => void;
}

export class SpoolAccess {
  readonly #o: DeliveryOptions;
  readonly #log: Logger;
  readonly #metrics: DeliveryMetrics;
  readonly #onWritten: () => void;
  #spool: Spool | undefined;
  #unavailable = false;
  #depth = 0;

  constructor(deps: SpoolAccessOptions) {
    this.#o = deps.options;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#onWritten = deps.onWritten ?? (() => {});
  }

  get path(): string {
    return this.#o.spoolPath;
  }

  /** Events in the spool when last counted (for the gauge). */
  get depth(): number {
    return this.#depth;
  }

  /** This process has the spool open (or had it, until it was closed from outside). */
  get opened(): boolean {
    return this.#spool !== undefined;
  }

  /** The spool is there, open here or on disk from an earlier process. */
  exists(): boolean {
    return this.#spool !== undefined || Spool.exists(this.#o.spoolPath);
  }

  /** The open spool, if this process has one that is not closed. */
  get current(): Spool | undefined {
    return this.#spool && !this.#spool.closed ? this.#spool : undefined;
  }

  open(): Spool | undefined {
    if (this.#spool && !this.#spool.closed) return this.#spool;
    if (this.#unavailable) return undefined;
    try {
      this.#spool = Spool.open(this.#o.spoolPath, {
        limits: { maxEvents: this.#o.spoolMaxEvents, maxBytes: this.#o.spoolMaxBytes },
        onWarning: (m) => this.#log.warn(m),
      });
      this.#spool.prune();
      return this.#spool;
    } catch (error) {
      this.#unavailable = true;
      this.#log.warn(`cannot open the spool ${this.#o.spoolPath}: ${(error as Error).message}`);
      setTimeout(() => {
        this.#unavailable = false;
      }, REOPEN_AFTER_MS).unref();
      return undefined;
    }
  }

  /** Runs `run` on the spool, if it can be opened; a failure is logged, never thrown. */
  with(run: (spool: Spool) => void): void {
    const spool = this.open();
    if (!spool) return;
    try {
      run(spool);
      this.#depth = spool.count();
    } catch (error) {
      this.#log.warn(`spool ${this.#o.spoolPath}: ${(error as Error).message}`);
    }
  }

  /** Counts the events in the spool, keeping the last known count if it cannot. */
  count(spool: Spool): number {
    try {
      this.#depth = spool.count();
    } catch {
      // Keep the last known depth.
    }
    return this.#depth;
  }

  /** Writes jobs to the spool synchronously; what cannot be written is counted and logged as lost. */
  write(jobs: Job[], why: string, failure?: DeliveryFailure): void {
    const inputs: SpoolInput[] = [];
    const byId = new Map<string, Job>();
    for (const job of jobs) {
      const input = this.#input(job, failure);
      if (!input) continue;
      inputs.push(input);
      byId.set(job.eventId, job);
    }
    if (inputs.length === 0) return;
    const spool = this.open();
    if (!spool) {
      for (const job of byId.values()) this.lose(job, `the spool ${this.#o.spoolPath} cannot be opened`);
      return;
    }
    let result: ReturnType<Spool["put"]>;
    try {
      result = spool.put(inputs);
    } catch (error) {
      for (const job of byId.values()) this.lose(job, `the spool could not be written: ${(error as Error).message}`);
      return;
    }
    for (const id of result.stored) {
      const job = byId.get(id);
      if (job) this.#stored(job, why);
    }
    for (const { input, reason } of result.lost) {
      const job = byId.get(input.eventId);
      if (job) this.lose(job, reason, false);
    }
    // Acknowledged already (another process delivered them from the journal or the spool): nothing left to do.
    for (const id of result.delivered) byId.get(id)?.session.settled?.(id, "acked");
    this.count(spool);
    this.#onWritten();
  }

  /** The spool's row for a job, or nothing (and the job counted lost) when its payload cannot be built. */
  #input(job: Job, failure: DeliveryFailure | undefined): SpoolInput | undefined {
    let payload: Record<string, unknown>;
    try {
      payload = { ...(job.payload() as Record<string, unknown>) };
    } catch (error) {
      this.lose(job, `its payload could not be built: ${(error as Error).message}`);
      return undefined;
    }
    const s = job.session;
    const rejected = failure?.kind === "rejected";
    return {
      eventId: job.eventId,
      kind: job.kind,
      startEventId: s.startEventId,
      trackerSessionId: job.kind === "end" ? s.trackerSessionId : undefined,
      component: s.component,
      localSessionId: s.localSessionId,
      traceId: s.traceId,
      spanId: s.spanId,
      payload,
      state: rejected ? "rejected" : "pending",
      attempts: failure ? 1 : 0,
      lastError: failure?.message,
      nextAttemptAt: rejected ? Date.now() + this.#o.rejectedRetryMs : 0,
    };
  }

  #stored(job: Job, why: string): void {
    if (!job.spooled) this.#metrics.emission(eventTypeOf(job.kind), "spooled");
    job.spooled = true;
    job.session.settled?.(job.eventId, "spooled");
    if (job.kind === "start" && job.session.start === "memory" && job.finished) job.session.start = "spool";
    this.#log.debug(`spooled ${job.kind} ${job.eventId}: ${why}`);
  }

  /** Says an event is lost: a warning, the `lost` metric, and (unless the spool counted it already) its count. */
  lose(job: Job, reason: string, count = true): void {
    this.#metrics.emission(eventTypeOf(job.kind), "lost");
    if (count && this.#spool && !this.#spool.closed) {
      try {
        this.#spool.addLost(1);
      } catch {
        // Already reporting a failure of the spool.
      }
    }
    this.#log.warn(
      `lost a session_${job.kind} event (component ${job.session.component}, trace ${job.session.traceId}): ${reason}`,
    );
  }

  close(): void {
    this.#spool?.close();
    this.#spool = undefined;
  }
}
