/**
 * Delivery of session events to the tracker: never on the shell's path, and
 * no event lost.
 *
 * Write-ahead discipline: an event lives in memory until the tracker
 * acknowledges it, and is written to the durable spool on every path that
 * could otherwise lose it — a final failure, an open circuit, a rejection, a
 * full queue, a flush or shutdown (before waiting for sends in flight), and
 * synchronously in the process `exit` handler.
 * We chose this over writing every event to disk before its first send
 * because the happy path then costs a shell no disk I/O and no SQLite open
 * before the first prompt; the only death this cannot cover is SIGKILL of
 * the shell itself, which the tracker's lease turns into "abandoned". A row
 * leaves the spool only after acknowledgement; the tracker de-duplicates by
 * event_id, so the at-least-once resends this allows are harmless.
 *
 * Ordering per session: the in-memory queue is sent oldest first, events of
 * different sessions at once (up to `sendConcurrency`), and a session's next
 * event only once its previous one is settled, so a start is always sent
 * before its end (which needs the session id the start receives). Once any
 * event of a session is in the spool, the rest of that session goes there
 * too, and the spool is drained in arrival order, an end waiting for the
 * session id its start receives.
 */

import type { MeterProvider, TracerProvider } from "@opentelemetry/api";
import { holdWhile } from "../deadline.ts";
import type { Logger } from "../log.ts";
import { ATTR_SHELL_TRACKER_SESSION_ID } from "../semconv.ts";
import { Drainer, type DrainOptions, type DrainSummary } from "./drainer.ts";
import { classifyError } from "./errors.ts";
import type { EndPayload, StartPayload } from "./events.ts";
import { Heartbeats } from "./heartbeats.ts";
import { type Delivered, type Job, keyOf, newJob, type Phase, type SessionRef } from "./jobs.ts";
import { DeliveryMetrics } from "./metrics.ts";
import type { DeliveryOptions } from "./options.ts";
import { SessionQueue } from "./queue.ts";
import { Sender } from "./sender.ts";
import { SpoolAccess } from "./spool-access.ts";

export type { DrainOptions, DrainSummary } from "./drainer.ts";
export type { SessionRef } from "./jobs.ts";

export interface SessionDeliveryOptions {
  options: DeliveryOptions;
  log: Logger;
  /** "live": inside a program with shells (exit handler, exit grace, background drains); "drain": `spool drain`. */
  mode: "live" | "drain";
  meterProvider?: MeterProvider;
  tracerProvider?: TracerProvider;
}

/**
 * Delivery as the span processor sees it: sessions start and end; events go
 * through the queue to the sender, to the spool when they cannot, and from
 * the spool through the drainer. This class keeps the sessions and the
 * lifetime rules: the exit grace, parking, the process `exit` handler,
 * flush and shutdown.
 */
export class SessionDelivery {
  readonly #o: DeliveryOptions;
  readonly #log: Logger;
  readonly #live: boolean;
  readonly #metrics: DeliveryMetrics;
  readonly #sender: Sender;
  readonly #spool: SpoolAccess;
  readonly #queue: SessionQueue;
  readonly #drainer: Drainer;
  readonly #heartbeats: Heartbeats;
  readonly #sessions = new Map<string, SessionRef>();
  readonly #byStart = new Map<string, SessionRef>();
  #active = 0;
  #lingerTimer: NodeJS.Timeout | undefined;
  /** Closes the idle connection a while after the last send (idleCloseMs). */
  #idleTimer: NodeJS.Timeout | undefined;
  /** The exit grace ran out since the last session ended (and none has started since). */
  #graceOver = false;
  /** The exit grace running now began because the last session ended (not for a background pass). */
  #lingerAfterSessions = false;
  /** Moved on exit and shutdown: sends and drain passes of an earlier epoch stop. */
  #epoch = 0;
  #phase: Phase = "running";
  readonly #onExit = () => this.#exitNow();

  constructor(deps: SessionDeliveryOptions) {
    this.#o = deps.options;
    this.#log = deps.log;
    this.#live = deps.mode === "live";
    this.#metrics = new DeliveryMetrics(
      { circuitState: () => this.#sender.circuit, spoolDepth: () => this.#spool.depth },
      deps.meterProvider,
    );
    this.#sender = new Sender({
      options: this.#o,
      log: this.#log,
      metrics: this.#metrics,
      tracerProvider: deps.tracerProvider,
      onCircuitChange: (state) => {
        // Half-open lets one probe through: let the spool's next event be it. Closed: catch up now.
        if (state === "closed") this.#drainer.resetBackoff();
        if (state !== "open") this.#drainer.schedule(0);
      },
    });
    this.#spool = new SpoolAccess({
      options: this.#o,
      log: this.#log,
      metrics: this.#metrics,
      onWritten: () => this.#drainer.schedule(),
    });
    this.#queue = this.#newQueue();
    this.#drainer = this.#newDrainer();
    this.#heartbeats = new Heartbeats({
      intervalMs: this.#live ? this.#o.heartbeatMs : 0,
      live: () => [...this.#sessions.values()].filter((s) => s.start === "acked" && !s.ended),
      halted: () => this.#phase !== "running" || this.#sender.circuit === "open",
      beat: (session) => this.#sender.heartbeat(session),
      onError: (error) => this.#log.debug(`heartbeat round failed: ${classifyError(error).message}`),
    });
    if (this.#live) {
      process.on("exit", this.#onExit);
      // Events a previous process left behind: deliver them, away from this program's start-up.
      if (this.#spool.exists()) this.#drainer.schedule(this.#o.startupDrainDelayMs);
    }
  }

  #newQueue(): SessionQueue {
    return new SessionQueue({
      max: this.#o.queueMax,
      concurrency: this.#o.sendConcurrency,
      log: this.#log,
      phase: () => this.#phase,
      deliver: (jobs) => this.#deliver(jobs),
      batchSize: () => this.#sender.batchSize,
      settle: (job, outcome) => this.#settle(job, outcome),
      spool: (jobs, why) => this.#spool.write(jobs, why),
      onIdle: () => this.#maybeIdle(),
    });
  }

  #newDrainer(): Drainer {
    return new Drainer({
      options: this.#o,
      log: this.#log,
      spool: this.#spool,
      deliver: (jobs) => this.#deliver(jobs),
      batchSize: () => this.#sender.batchSize,
      background: this.#live,
      epoch: () => this.#epoch,
      halted: () => this.#phase !== "running",
      owns: (eventId) => this.#queue.owns(eventId),
      liveSession: (startEventId) => this.#byStart.get(startEventId),
      adopt: (session, trackerSessionId) => this.#adopt(session, trackerSessionId),
      onPassStart: () => {
        this.#cancelIdleClose();
        if (this.#live && this.#active === 0) this.#startLinger();
      },
      onPassEnd: () => this.#maybeIdle(),
    });
  }

  get spoolPath(): string {
    return this.#o.spoolPath;
  }

  /** Number of events waiting in memory (queued or in flight). */
  get pending(): number {
    return this.#queue.length;
  }

  // ---- sessions (called by the span processor; synchronous and cheap) ----

  sessionStarted(session: SessionRef, payload: () => StartPayload): void {
    if (this.#phase === "stopped") return;
    this.#sessions.set(keyOf(session), session);
    this.#byStart.set(session.startEventId, session);
    this.#active++;
    this.#graceOver = false;
    this.#sender.staying();
    this.#cancelLinger();
    this.#cancelIdleClose();
    const job = newJob("start", session.startEventId, session, payload, this.#epoch);
    if (this.#phase === "exiting") this.#spool.write([job], "the process is exiting");
    else this.#queue.push(job);
  }

  /** The session's span ended. `ensureStarted` supplies its start when the session was never seen starting. */
  sessionEnded(
    ref: Pick<SessionRef, "traceId" | "spanId">,
    endEventId: string,
    payload: () => EndPayload,
    ensureStarted: () => { session: SessionRef; payload: () => StartPayload },
  ): void {
    if (this.#phase === "stopped") return;
    let session = this.#sessions.get(keyOf(ref));
    if (!session) {
      const late = ensureStarted();
      this.sessionStarted(late.session, late.payload);
      session = late.session;
    }
    if (session.ended) return;
    session.ended = true;
    session.span = undefined;
    this.#active = Math.max(0, this.#active - 1);
    const job = newJob("end", endEventId, session, payload, this.#epoch);
    if (this.#phase === "exiting") this.#spool.write([job], "the process is exiting");
    else if (session.start === "spool") this.#spool.write([job], "its start is waiting in the spool");
    else this.#queue.push(job);
    this.#sessions.delete(keyOf(session));
    // Only live sessions need finding by their start (to learn a session id the spool's drain obtained).
    this.#byStart.delete(session.startEventId);
    if (this.#active === 0) this.#startLinger(true);
  }

  // ---- what became of an event ----

  /** One call each, or shared calls where the tracker takes batches (the sender decides). */
  #deliver(jobs: Job[]): Promise<Delivered[]> {
    return this.#sender.deliverMany(jobs, (job) => this.#stopped(job));
  }

  /** The job is no longer ours to send: delivery stopped or is exiting, it was parked, or it was spooled. */
  #stopped(job: Job): boolean {
    return this.#phase !== "running" || job.epoch < this.#epoch || job.finished;
  }

  /** Records the outcome of an in-memory job. */
  #settle(job: Job, outcome: Delivered): void {
    if (outcome.ok) {
      job.session.settled?.(job.eventId, "acked", outcome.trackerSessionId);
      if (job.kind === "start" && outcome.trackerSessionId !== undefined) {
        this.#adopt(job.session, outcome.trackerSessionId);
        // The mapping lets an end spooled later (perhaps by a dying process) find its session id.
        if (job.spooled || this.#spool.opened) {
          this.#spool.with((s) => s.ackStart(job.session.startEventId, outcome.trackerSessionId as string));
        }
      } else if (job.spooled) {
        this.#spool.with((s) => s.remove(job.eventId));
      }
      return;
    }
    if (job.kind === "start") job.session.start = "spool";
    this.#spool.write([job], outcome.failure.message, outcome.failure);
  }

  /** The tracker acknowledged a session's start (from the queue or a drain). */
  #adopt(session: SessionRef, trackerSessionId: string): void {
    session.trackerSessionId = trackerSessionId;
    session.start = "acked";
    if (session.span?.isRecording()) session.span.setAttribute(ATTR_SHELL_TRACKER_SESSION_ID, trackerSessionId);
    if (!session.ended) this.#heartbeats.ensure();
  }

  /** One pass over the spool, in order. Concurrent calls share the pass in progress. */
  drain(options: DrainOptions = {}): Promise<DrainSummary> {
    const pass = this.#drainer.drain(options);
    // A process that only drains (`spool drain`, a drain helper) lives for the pass: the sends hold nothing.
    if (!this.#live) holdWhile(pass);
    return pass;
  }

  // ---- lifetime ----

  /**
   * Once no session is active, delivery keeps the process alive for at most
   * the exit grace while events are unacknowledged: nothing else of ours
   * holds it (the connection's sockets, a stdio tracker, retry waits and
   * timers are all unreferenced). A program that is done then exits when
   * the grace runs out, and its `exit` handler spools what is left; a
   * program that runs on (a server with an admin shell) keeps sending as
   * before, with nothing cut off or moved to the spool.
   */
  #startLinger(afterSessions = false): void {
    if (!this.#live || this.#phase !== "running") return;
    this.#lingerAfterSessions ||= afterSessions;
    if (this.#lingerTimer) return;
    this.#lingerTimer = setTimeout(() => {
      this.#lingerTimer = undefined;
      this.#graceOver = true;
      // Calls in flight hold nothing, but a first connect's era probe does (a timer inside the SDK): a program
      // that is done must not wait on a slow tracker's answer to it. Only after its shells ended: the grace of a
      // background pass comes from a program that is evidently running on.
      if (this.#lingerAfterSessions) this.#sender.leaving();
      this.#lingerAfterSessions = false;
    }, this.#o.exitGraceMs);
  }

  #cancelLinger(): void {
    clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    this.#lingerAfterSessions = false;
  }

  /** Takes every job off the in-memory queue and writes it to the spool; their sessions' starts now live there. */
  #spoolQueue(why: string): void {
    const jobs = this.#queue.takeAll();
    for (const job of jobs) if (job.kind === "start") job.session.start = "spool";
    this.#spool.write(jobs, why);
    this.#queue.wakeFlushWaiters();
  }

  #idle(): boolean {
    return this.#active === 0 && this.#queue.length === 0 && !this.#queue.busy && !this.#drainer.running;
  }

  #maybeIdle(): void {
    if (!this.#live || !this.#idle()) return;
    // Nothing left to wait for: a program that is done need not sit out the rest of the grace.
    this.#cancelLinger();
    this.#heartbeats.stop();
    if (this.#idleTimer || this.#phase !== "running") return;
    const close = () => {
      this.#idleTimer = undefined;
      if (this.#idle()) this.#sender.resetConnections();
    };
    if (this.#o.idleCloseMs === 0) close();
    else this.#idleTimer = setTimeout(close, this.#o.idleCloseMs).unref();
  }

  #cancelIdleClose(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  /** The process `exit` event: only synchronous work is possible now. */
  #exitNow(): void {
    if (this.#phase === "exiting") return;
    this.#phase = "exiting";
    this.#epoch++;
    this.#spoolQueue("the process is exiting");
    this.#drainer.cancel();
    this.#cancelLinger();
    this.#cancelIdleClose();
    this.#heartbeats.stop();
    this.#drainer.releaseOnExit();
    // Sessions still open are ended by the instrumentation's own exit handler: their ends are spooled in onEnd.
  }

  /**
   * Writes every unacknowledged event to the spool at once (so nothing is
   * lost if the process dies right after, as after SIGTERM), then gives sends
   * in flight up to the flush timeout to be acknowledged.
   */
  async forceFlush(): Promise<void> {
    const unspooled = this.#queue.unfinished().filter((j) => !j.spooled);
    if (unspooled.length > 0) this.#spool.write(unspooled, "flush");
    // Past the exit grace the program is leaving (this is its last flush) or runs on and keeps sending:
    // either way the spool holds a copy, and waiting would only hold up an exit.
    if (!this.#graceOver) await this.#queue.flushed(this.#o.flushTimeoutMs);
  }

  async shutdown(): Promise<void> {
    if (this.#phase === "stopped") return;
    await this.forceFlush();
    // An exit that came first keeps its say: what exit handlers end still goes to the spool.
    if (this.#phase === "running") this.#phase = "stopped";
    this.#epoch++;
    const left = this.#queue.unfinished();
    for (const job of left) this.#queue.finish(job);
    const unspooled = left.filter((j) => !j.spooled);
    if (unspooled.length > 0) this.#spool.write(unspooled, "shutdown");
    this.#drainer.cancel();
    this.#cancelLinger();
    this.#cancelIdleClose();
    this.#heartbeats.stop();
    this.#sender.closeConnections();
    await this.#drainer.settled();
    this.#sender.shutdown();
    process.removeListener("exit", this.#onExit);
    this.#spool.close();
  }
}
