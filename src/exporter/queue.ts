/**
 * The in-memory queue and its worker: events of different sessions are sent
 * at once (up to the concurrency), a session's next event only once its
 * previous one is settled, so a start always goes before its end (which
 * needs the session id the start receives). Bounded: an event that finds the
 * queue full goes to the spool instead. What becomes of a sent event is the
 * caller's business (`settle`); the queue only keeps the order and the count.
 *
 * When more events are ready than there are free sends and the tracker takes
 * several in one call (`batchSize`), the ready ones are shared out over the
 * free sends instead of waiting their turn: a burst (many shells closing at
 * once) costs a few calls, not one queue of them. Alone, an event still goes
 * in its own call at once.
 */
import { settledWithin } from "../deadline.ts";
import type { Logger } from "../log.ts";
import type { Delivered, Job, Phase, SessionRef } from "./jobs.ts";

export interface SessionQueueOptions {
  max: number;
  concurrency: number;
  log: Logger;
  phase: () => Phase;
  /** Sends events of one component, each of another session (often just one), answering for each in order. */
  deliver: (jobs: Job[]) => Promise<Delivered[]>;
  /** How many events one send may carry now (1 when the tracker takes one per call). */
  batchSize: () => number;
  /** Books what became of a job taken off the queue (or of one parked while in flight that was acknowledged). */
  settle: (job: Job, outcome: Delivered) => void;
  /** Hands jobs to the spool instead of sending them. */
  spool: (jobs: Job[], why: string) => void;
  /** Told whenever the worker runs out of work to start. */
  onIdle: () => void;
}

export class SessionQueue {
  readonly #o: SessionQueueOptions;
  readonly #jobs: Job[] = [];
  /** Event ids of unfinished jobs: a drain in this process leaves their spool copies alone. */
  readonly #owned = new Set<string>();
  /** Sessions with an event being sent: their next one waits. */
  readonly #sending = new Set<SessionRef>();
  /** Sends in flight (one may carry several events). */
  #sends = 0;
  /** A dispatch is planned for a later turn. */
  #pumpQueued = false;
  /** forceFlush calls waiting for the queue to empty (or the process to start exiting). */
  readonly #flushWaiters = new Set<() => void>();

  constructor(options: SessionQueueOptions) {
    this.#o = options;
  }

  /** Jobs in memory (queued or in flight). */
  get length(): number {
    return this.#jobs.length;
  }

  /** Sends are in flight, or a dispatch is planned. */
  get busy(): boolean {
    return this.#sends > 0 || this.#pumpQueued;
  }

  owns(eventId: string): boolean {
    return this.#owned.has(eventId);
  }

  push(job: Job): void {
    if (this.#jobs.length >= this.#o.max) {
      this.#o.spool([job], `the in-memory queue holds its maximum of ${this.#o.max} events`);
      return;
    }
    this.#jobs.push(job);
    this.#owned.add(job.eventId);
    this.#pump();
  }

  /** Jobs not yet taken off the queue. */
  unfinished(): Job[] {
    return this.#jobs.filter((j) => !j.finished);
  }

  /** Takes a job off the queue. */
  finish(job: Job): void {
    job.finished = true;
    this.#owned.delete(job.eventId);
    const i = this.#jobs.indexOf(job);
    if (i >= 0) this.#jobs.splice(i, 1);
    this.wakeFlushWaiters();
  }

  /** Empties the queue, returning what was on it and unfinished; sends in flight are stopped by their epoch. */
  takeAll(): Job[] {
    const jobs = this.#jobs.splice(0).filter((j) => !j.finished);
    for (const job of jobs) {
      job.finished = true;
      this.#owned.delete(job.eventId);
    }
    return jobs;
  }

  #pump(): void {
    if (this.#pumpQueued || this.#o.phase() === "stopped") return;
    this.#pumpQueued = true;
    // On a later turn: whatever called us (a span start, the first prompt) finishes first.
    setImmediate(() => {
      this.#pumpQueued = false;
      this.#dispatch();
    });
  }

  /** Starts sending the oldest events whose sessions have nothing in flight, up to the concurrency. */
  #dispatch(): void {
    const ready: Job[] = [];
    const seen = new Set<SessionRef>();
    for (const job of [...this.#jobs]) {
      if (job.finished || this.#sending.has(job.session) || seen.has(job.session)) continue;
      seen.add(job.session);
      if (job.kind === "end" && job.session.start === "spool") {
        this.finish(job);
        this.#o.spool([job], "its start is waiting in the spool");
        continue;
      }
      ready.push(job);
    }
    if (this.#o.phase() === "running") {
      for (const send of this.#shareOut(ready, this.#o.concurrency - this.#sends)) void this.#send(send);
    }
    this.#o.onIdle();
  }

  /**
   * The sends to start: each ready job alone while the free sends suffice;
   * else, where calls carry several events, the ready jobs of each component
   * spread evenly over the free sends (oldest first, at most `batchSize` a send).
   */
  #shareOut(ready: Job[], free: number): Job[][] {
    if (free <= 0 || ready.length === 0) return [];
    const most = this.#o.batchSize();
    if (ready.length <= free || most <= 1) return ready.slice(0, free).map((job) => [job]);
    const each = Math.min(most, Math.ceil(ready.length / free));
    const sends: Job[][] = [];
    for (const jobs of Map.groupBy(ready, (job) => job.session.component).values()) {
      for (let i = 0; i < jobs.length && sends.length < free; i += each) sends.push(jobs.slice(i, i + each));
    }
    return sends;
  }

  async #send(jobs: Job[]): Promise<void> {
    this.#sends++;
    for (const job of jobs) this.#sending.add(job.session);
    try {
      const outcomes = await this.#o.deliver(jobs);
      for (const [i, job] of jobs.entries()) this.#settled(job, outcomes[i] as Delivered);
    } catch (error) {
      // Not expected (the sender sorts every failure); the events stay wherever they are, queue or spool.
      this.#o.log.warn(`sending ${jobs.map((j) => `${j.kind} ${j.eventId}`).join(", ")}: ${(error as Error).message}`);
    } finally {
      this.#sends--;
      for (const job of jobs) this.#sending.delete(job.session);
      if (this.#o.phase() === "running") this.#dispatch();
    }
  }

  #settled(job: Job, outcome: Delivered): void {
    if (job.finished) {
      // Spooled meanwhile by a park: an acknowledgement still clears the spool copy; a failure leaves it.
      if (outcome.ok && this.#o.phase() !== "exiting") this.#o.settle(job, outcome);
      return;
    }
    this.finish(job);
    this.#o.settle(job, outcome);
  }

  /**
   * Waits until nothing in memory is still being sent, or the process is
   * leaving, for at most `timeoutMs`. The wait keeps the process alive (the
   * sends themselves do not): a caller that awaits a flush gets its answer
   * even when nothing else runs.
   */
  async flushed(timeoutMs: number): Promise<void> {
    if (this.#isFlushed()) return;
    let wake = () => {};
    const flushed = new Promise<void>((resolve) => {
      wake = resolve;
    });
    this.#flushWaiters.add(wake);
    try {
      await settledWithin(flushed, timeoutMs);
    } finally {
      this.#flushWaiters.delete(wake);
    }
  }

  #isFlushed(): boolean {
    return this.#o.phase() === "exiting" || !this.#jobs.some((j) => !j.finished);
  }

  wakeFlushWaiters(): void {
    if (this.#flushWaiters.size === 0 || !this.#isFlushed()) return;
    for (const wake of this.#flushWaiters) wake();
    this.#flushWaiters.clear();
  }
}
