/**
 * The drainer: sends what the spool holds, oldest first, under a lease so
 * only one process on the spool drains it at a time. A session's events stay
 * in order: once one of them cannot go (not due, rejected, failed, still in
 * this process's memory), the rest of that session waits for a later pass,
 * and an end waits for the session id its start receives. Used by a live
 * program (passes planned in the background, with a backoff that doubles up
 * to a ceiling) and by `spool drain` (one pass, now).
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { SessionEndEvent, SessionStartEvent, validate } from "../contract/index.ts";
import type { Logger } from "../log.ts";
import { classifyError } from "./errors.ts";
import type { EndPayload, StartPayload } from "./events.ts";
import { ingestJournals, journalDirOf, processAlive } from "./ingest.ts";
import type { Delivered, Job, SessionRef } from "./jobs.ts";
import type { DeliveryOptions } from "./options.ts";
import type { Spool, SpoolRow } from "./spool.ts";
import type { SpoolAccess } from "./spool-access.ts";

const LEASE_TTL_MS = 30_000;
/** A spool row and the job it became. */
interface Taken {
  row: SpoolRow;
  job: Job;
}
const DRAIN_BATCH = 50;
const NO_TRACE = "00000000000000000000000000000000";
const NO_SPAN = "0000000000000000";

/**
 * Whether the holder of a drain lease (`host:pid:nonce`) is a process of this
 * host that no longer exists. Signal 0 tests for existence without sending anything.
 */
export function leaseHolderGone(holder: string, host = hostname()): boolean {
  const [holderHost, pidText] = holder.split(":");
  const pid = Number(pidText);
  if (holderHost !== host || !Number.isInteger(pid) || pid <= 0) return false;
  return pid !== process.pid && !processAlive(pid);
}

export interface DrainSummary {
  /** Another process holds the drain lease. */
  busy: boolean;
  delivered: number;
  rejected: number;
  failed: number;
  quarantined: number;
  /** Events still in the spool afterwards. */
  waiting: number;
}

export interface DrainOptions {
  /** Try every row now, ignoring per-row back-off and the rejected-retry pause (an explicit `spool drain`). */
  now?: boolean;
  /** Called after each row that was tried. */
  onProgress?: (done: number, summary: DrainSummary) => void;
  /** Stop starting new rows after this time (ms since epoch). */
  deadline?: number;
}

export interface DrainerOptions {
  options: DeliveryOptions;
  log: Logger;
  spool: SpoolAccess;
  /** Sends events of one component, each of another session (often just one), answering for each in order. */
  deliver: (jobs: Job[]) => Promise<Delivered[]>;
  /** How many events one send may carry now (1 when the tracker takes one per call). */
  batchSize: () => number;
  /** Plans background passes (a live program); `spool drain` runs its one pass itself. */
  background: boolean;
  /** The park epoch now: a pass stops when it moves. */
  epoch: () => number;
  /** Delivery is no longer running (stopped or exiting). */
  halted: () => boolean;
  /** The event is in this process's memory still: its spool copy is left alone. */
  owns: (eventId: string) => boolean;
  /** The live session whose start this is, if the program still runs it. */
  liveSession: (startEventId: string) => SessionRef | undefined;
  /** A live session's start was acknowledged by a drain. */
  adopt: (session: SessionRef, trackerSessionId: string) => void;
  /** Told when a pass begins and ends (the lifetime rules care about drains in progress). */
  onPassStart?: () => void;
  onPassEnd?: () => void;
}

/** Per-pass bookkeeping: sessions whose next event must wait, the summary so far. */
interface Pass {
  spool: Spool;
  options: DrainOptions;
  epoch: number;
  blocked: Set<string>;
  summary: DrainSummary;
  done: number;
}

export class Drainer {
  readonly #o: DrainerOptions;
  readonly #owner = `${hostname()}:${process.pid}:${randomUUID()}`;
  #draining: Promise<DrainSummary> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #at = Number.POSITIVE_INFINITY;
  #backoffMs: number;

  constructor(options: DrainerOptions) {
    this.#o = options;
    this.#backoffMs = options.options.spoolRetryMs;
  }

  /** A pass is in progress. */
  get running(): boolean {
    return this.#draining !== undefined;
  }

  /** Plans a background pass in `delayMs`, unless one is planned sooner. */
  schedule(delayMs: number = this.#backoffMs): void {
    if (!this.#o.background || this.#o.halted()) return;
    const at = Date.now() + delayMs;
    if (this.#timer && this.#at <= at) return;
    clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#at = Number.POSITIVE_INFINITY;
      this.drain().then(
        (summary) => this.#afterBackground(summary),
        (error: unknown) => {
          // Inside someone else's process: a failed pass (say, an unreadable journal directory) is said and
          // retried with backoff, never left as an unhandled rejection that would end the host program.
          this.#o.log.warnOnce("drain-failed", `draining the spool failed: ${classifyError(error).message}; retrying`);
          if (!this.#o.halted()) this.#retryLater();
        },
      );
    }, delayMs);
    this.#timer.unref();
  }

  /** Back to the shortest pause between passes (the tracker answers again). */
  resetBackoff(): void {
    this.#backoffMs = this.#o.options.spoolRetryMs;
  }

  cancel(): void {
    clearTimeout(this.#timer);
  }

  #afterBackground(summary: DrainSummary): void {
    if (this.#o.halted()) return;
    if (summary.busy) {
      // Another process is draining the same spool: look again soon, it may stop (or die) any time.
      this.schedule(this.#o.options.spoolRetryMs);
    } else if (summary.waiting > summary.rejected) {
      this.#retryLater();
    } else {
      this.resetBackoff();
      if (summary.rejected > 0) this.schedule(this.#o.options.rejectedRetryMs);
    }
  }

  /** The next pass after the current backoff, which doubles up to the retry ceiling. */
  #retryLater(): void {
    this.schedule(this.#backoffMs);
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#o.options.spoolRetryMaxMs);
  }

  /** One pass over the spool, in order. Concurrent calls share the pass in progress. */
  drain(options: DrainOptions = {}): Promise<DrainSummary> {
    if (this.#draining) return this.#draining;
    this.#draining = this.#pass(options).finally(() => {
      this.#draining = undefined;
      this.#o.onPassEnd?.();
    });
    return this.#draining;
  }

  /** Waits for the pass in progress, if any, whatever its outcome. */
  async settled(): Promise<void> {
    await this.#draining?.catch(() => {});
  }

  /** A pass cut off by the exit must not hold other processes back until its lease runs out. */
  releaseOnExit(): void {
    const spool = this.#o.spool.current;
    if (!this.#draining || !spool) return;
    try {
      spool.releaseLease(this.#owner);
    } catch {
      // The lease runs out by itself.
    }
  }

  async #pass(options: DrainOptions): Promise<DrainSummary> {
    const summary: DrainSummary = { busy: false, delivered: 0, rejected: 0, failed: 0, quarantined: 0, waiting: 0 };
    if (this.#o.halted()) return summary;
    // What processes that are gone wrote ahead and no helper took: every pass hands it to the spool first.
    ingestJournals(journalDirOf(this.#o.options.spoolPath), () => this.#o.spool.open(), this.#o.log);
    if (!this.#o.spool.exists()) return summary;
    const spool = this.#o.spool.open();
    if (!spool) return summary;
    this.#o.onPassStart?.();
    const pass: Pass = { spool, options, epoch: this.#o.epoch(), blocked: new Set(), summary, done: 0 };
    if (!this.#lease(spool)) return { ...summary, busy: true, waiting: this.#o.spool.count(spool) };
    try {
      await this.#rows(pass);
    } catch (error) {
      this.#o.log.warn(`draining the spool ${this.#o.options.spoolPath}: ${(error as Error).message}`);
    } finally {
      try {
        spool.releaseLease(this.#owner);
      } catch {
        // The lease expires by itself.
      }
    }
    summary.waiting = this.#o.spool.count(spool);
    return summary;
  }

  #lease(spool: Spool): boolean {
    try {
      return spool.acquireLease(this.#owner, LEASE_TTL_MS, leaseHolderGone);
    } catch (error) {
      this.#o.log.debug(`drain lease: ${(error as Error).message}`);
      return false;
    }
  }

  /**
   * Tries the rows, a page at a time, until the spool ends or the pass must
   * stop. Each send takes the first waiting row of as many sessions of one
   * component as a call may carry (one, until the tracker has listed its
   * batch tool); a session's later rows wait for the next send, so an end
   * goes once its start is answered, and events of different sessions still
   * go in the order they came.
   */
  async #rows(pass: Pass): Promise<void> {
    let afterSeq = 0;
    for (;;) {
      const rows = pass.spool.batch(afterSeq, DRAIN_BATCH);
      const last = rows.at(-1);
      if (last === undefined) return;
      afterSeq = last.seq;
      let left = rows;
      while (left.length > 0) {
        if (this.#mustStop(pass)) return;
        const group: Taken[] = [];
        const later: SpoolRow[] = [];
        /** Sessions with a row in this send or held back from it: their later rows wait too. */
        const seen = new Set<string>();
        for (const row of left) {
          const first = group[0];
          const fits =
            !seen.has(row.startEventId) &&
            (first === undefined || (group.length < this.#o.batchSize() && first.row.component === row.component));
          seen.add(row.startEventId);
          if (!fits) {
            later.push(row);
            continue;
          }
          const job = this.#take(pass, row);
          if (job !== undefined) group.push({ row, job });
        }
        if (group.length > 0 && !(await this.#send(pass, group))) return;
        left = later;
      }
    }
  }

  /** Sends rows taken together and books each; false when the pass should end (the tracker is not answering). */
  async #send(pass: Pass, group: Taken[]): Promise<boolean> {
    const outcomes = await this.#o.deliver(group.map((taken) => taken.job));
    let goOn = true;
    group.forEach(({ row, job }, i) => {
      pass.done++;
      // Every outcome is booked, even after one that ends the pass: an acknowledged row must leave the spool.
      if (!this.#record(pass, row, job, outcomes[i] as Delivered)) goOn = false;
      pass.options.onProgress?.(pass.done, pass.summary);
    });
    pass.spool.acquireLease(this.#owner, LEASE_TTL_MS, leaseHolderGone);
    return goOn;
  }

  #mustStop(pass: Pass): boolean {
    if (this.#o.halted() || this.#o.epoch() !== pass.epoch) return true;
    return pass.options.deadline !== undefined && Date.now() >= pass.options.deadline;
  }

  /** The row as a job to send now, or nothing when it waits (its session blocked) or was quarantined. */
  #take(pass: Pass, row: SpoolRow): Job | undefined {
    const due = pass.options.now === true || row.nextAttemptAt <= Date.now();
    if (this.#o.owns(row.eventId) || pass.blocked.has(row.startEventId) || !due) {
      pass.blocked.add(row.startEventId);
      return undefined;
    }
    const job = this.#jobFromRow(pass, row);
    if (job === "skip") pass.blocked.add(row.startEventId);
    return typeof job === "string" ? undefined : job;
  }

  /** Books a row's outcome; false when the pass should end (the tracker is not answering). */
  #record(pass: Pass, row: SpoolRow, job: Job, outcome: Delivered): boolean {
    const { spool, summary } = pass;
    if (outcome.ok) {
      summary.delivered++;
      if (job.kind === "start" && outcome.trackerSessionId !== undefined) {
        spool.ackStart(row.eventId, outcome.trackerSessionId);
        const live = this.#o.liveSession(row.startEventId);
        if (live) this.#o.adopt(live, outcome.trackerSessionId);
      } else {
        spool.remove(row.eventId);
      }
      return true;
    }
    const { failure } = outcome;
    pass.blocked.add(row.startEventId);
    if (failure.kind === "rejected") {
      summary.rejected++;
      spool.markAttempt(row.seq, "rejected", failure.message, Date.now() + this.#o.options.rejectedRetryMs);
      return true;
    }
    if (failure.kind === "transient") {
      summary.failed++;
      spool.markAttempt(row.seq, "pending", failure.message, 0);
      return true;
    }
    // Open circuit or stopped: the tracker is not answering; the rest waits for the next pass.
    if (failure.kind === "short_circuited") spool.markAttempt(row.seq, "pending", failure.message, 0);
    return false;
  }

  /** A spool row as a job, "skip" when it must wait, or "quarantined" when it could not be read. */
  #jobFromRow(pass: Pass, row: SpoolRow): Job | "skip" | "quarantined" {
    const quarantine = (reason: string): "quarantined" => {
      pass.spool.quarantine(row.seq, reason);
      pass.summary.quarantined++;
      this.#o.log.warn(`moved spooled event ${row.eventId} (seq ${row.seq}) to quarantine: ${reason}`);
      return "quarantined";
    };
    const payload = readPayload(row);
    if (typeof payload === "string") return quarantine(payload);
    let trackerSessionId: string | undefined;
    if (row.kind === "end") {
      const found = this.#sessionIdOf(pass.spool, row);
      if (found.wait) return "skip";
      if (found.problem !== undefined) return quarantine(found.problem);
      trackerSessionId = found.id;
    }
    return {
      // readPayload let only "start" and "end" through.
      kind: row.kind as Job["kind"],
      eventId: row.eventId,
      session: this.#sessionOf(row, trackerSessionId),
      payload: () => payload,
      spooled: true,
      finished: false,
      epoch: this.#o.epoch(),
      row,
    };
  }

  /** The tracker's session id a spooled end is for: known, still to come (wait), or never to be had. */
  #sessionIdOf(spool: Spool, row: SpoolRow): { id?: string; wait?: true; problem?: string } {
    if (row.trackerSessionId !== null) return { id: row.trackerSessionId };
    const found = spool.locateStart(row.startEventId);
    if (found.where === "mapped") return { id: found.trackerSessionId };
    if (found.where === "spooled" || found.where === "rejected") return { wait: true };
    if (this.#o.owns(row.startEventId)) return { wait: true };
    if (found.where === "quarantined") return { problem: "its start event was quarantined" };
    return { problem: "its start event is not in the spool and its session id is unknown" };
  }

  /** What delivery knows of a spooled event's session: the row, and the live session's context if it runs here. */
  #sessionOf(row: SpoolRow, trackerSessionId: string | undefined): SessionRef {
    const live = this.#o.liveSession(row.startEventId);
    const traceId = row.traceId && /^[0-9a-f]{32}$/.test(row.traceId) ? row.traceId : undefined;
    const spanId = row.spanId && /^[0-9a-f]{16}$/.test(row.spanId) ? row.spanId : undefined;
    return {
      startEventId: row.startEventId,
      component: row.component,
      localSessionId: row.localSessionId ?? undefined,
      traceId: traceId ?? NO_TRACE,
      spanId: spanId ?? NO_SPAN,
      traceFlags: traceId && spanId ? 1 : 0,
      traceState: live?.traceState,
      baggage: live?.baggage,
      span: undefined,
      trackerSessionId,
      start: row.kind === "start" ? "spool" : "acked",
      ended: true,
    };
  }
}

/** A spooled row's payload, checked against the contract, or why it cannot be sent (a string). */
function readPayload(row: SpoolRow): StartPayload | EndPayload | string {
  let payload: unknown;
  try {
    payload = JSON.parse(row.payload);
  } catch {
    return "its payload is not JSON";
  }
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    return "its payload is not a JSON object";
  }
  try {
    if (row.kind === "start") validate(SessionStartEvent, payload, "spooled track_session_start payload");
    else if (row.kind === "end") {
      // The session id comes later, from the start's acknowledgement: any value passes the check here.
      validate(SessionEndEvent, { ...payload, session_id: "x" }, "spooled track_session_end payload");
    } else return `unknown event kind "${row.kind}"`;
  } catch (error) {
    return (error as Error).message;
  }
  return payload as StartPayload | EndPayload;
}
