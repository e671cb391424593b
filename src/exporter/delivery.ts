/**
 * Delivery of session events to the tracker: never on the shell's path, and
 * no event lost.
 *
 * Write-ahead discipline: an event lives in memory until the tracker
 * acknowledges it, and is written to the durable spool on every path that
 * could otherwise lose it — a final failure, an open circuit, a rejection, a
 * full queue, a flush or shutdown (before waiting for sends in flight), the
 * exit grace running out, and synchronously in the process `exit` handler.
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

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import {
  type Baggage,
  type Context,
  context,
  type MeterProvider,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapSetter,
  type TracerProvider,
  type TraceState,
  trace,
} from "@opentelemetry/api";
import {
  CompositePropagator,
  suppressTracing,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { backOff } from "exponential-backoff";
import {
  parseToolResult,
  SessionEndEvent,
  SessionEndResult,
  SessionStartEvent,
  SessionStartResult,
  TOOL_NAMES,
  validate,
} from "../contract/index.ts";
import { settledWithin } from "../deadline.ts";
import {
  ATTR_ERROR_TYPE,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_MCP_METHOD_NAME,
  ATTR_NETWORK_TRANSPORT,
  ATTR_SHELL_TRACKER_SESSION_ID,
  type EmissionOutcome,
  SCOPE_NAME,
} from "../semconv.ts";
import { Breaker } from "./breaker.ts";
import { CLIENT_INFO, McpConnection } from "./client.ts";
import { Credentials } from "./credentials.ts";
import { answers, embeddedEnv, embeddedTracker } from "./embedded.ts";
import { classifyError, DeliveryFailure, fromResultError } from "./errors.ts";
import type { EndPayload, StartPayload } from "./events.ts";
import { ingestJournals, journalDirOf, processAlive } from "./ingest.ts";
import type { Logger } from "./log.ts";
import { DeliveryMetrics, type EventType } from "./metrics.ts";
import { type DeliveryOptions, describeTransport, type TransportSpec } from "./options.ts";
import { Spool, type SpoolInput, type SpoolRow } from "./spool.ts";

const PROPAGATOR = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
});
const META_SETTER: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

const LEASE_TTL_MS = 30_000;

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
const DRAIN_BATCH = 50;

/** What delivery knows about one shell session. */
export interface SessionRef {
  startEventId: string;
  component: string;
  localSessionId: string | undefined;
  traceId: string;
  spanId: string;
  traceFlags: number;
  traceState: TraceState | undefined;
  baggage: Baggage | undefined;
  /** The live span, while it records, to set the tracker's session id on. */
  span: Span | undefined;
  trackerSessionId: string | undefined;
  /** Where the start event is: in memory (queued or in flight), acknowledged, or in the spool. */
  start: "memory" | "acked" | "spool";
  ended: boolean;
  /**
   * Told when one of the session's events has been answered for: acknowledged
   * by the tracker, or written to the spool. The write-ahead journal keeps
   * its books with it.
   */
  settled?: (eventId: string, how: "acked" | "spooled", trackerSessionId?: string) => void;
}

interface Job {
  kind: "start" | "end";
  eventId: string;
  session: SessionRef;
  payload: () => StartPayload | EndPayload;
  /** A copy is in the spool (written ahead by a flush); remove it on acknowledgement. */
  spooled: boolean;
  finished: boolean;
  /** Value of the park epoch when queued: a later park stops it. */
  epoch: number;
  /** Set when the job comes from the spool. */
  row?: SpoolRow;
}

/** The tracker events go to, and the environment a stdio tracker is started with. */
interface Target {
  transport: TransportSpec;
  env: NodeJS.ProcessEnv;
}

type Delivered = { ok: true; trackerSessionId?: string } | { ok: false; failure: DeliveryFailure };

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

export interface SessionDeliveryOptions {
  options: DeliveryOptions;
  log: Logger;
  /** "live": inside a program with shells (exit handler, exit grace, background drains); "drain": `spool drain`. */
  mode: "live" | "drain";
  meterProvider?: MeterProvider;
  tracerProvider?: TracerProvider;
}

export class SessionDelivery {
  readonly #o: DeliveryOptions;
  readonly #log: Logger;
  readonly #mode: "live" | "drain";
  readonly #metrics: DeliveryMetrics;
  readonly #breaker: Breaker;
  readonly #credentials: Credentials;
  readonly #tracerProvider: TracerProvider | undefined;
  readonly #connections = new Map<string, McpConnection>();
  readonly #sessions = new Map<string, SessionRef>();
  readonly #byStart = new Map<string, SessionRef>();
  readonly #queue: Job[] = [];
  /** Event ids of unfinished in-memory jobs: a drain in this process leaves their spool copies alone. */
  readonly #owned = new Set<string>();
  readonly #owner = `${hostname()}:${process.pid}:${randomUUID()}`;
  #spool: Spool | undefined;
  #spoolUnavailable = false;
  #spoolDepth = 0;
  #active = 0;
  /** Sessions with an event being sent: their next one waits. Its size is the number of sends in flight. */
  readonly #sending = new Set<SessionRef>();
  /** A dispatch is scheduled for a later turn. */
  #pumpQueued = false;
  #draining: Promise<DrainSummary> | undefined;
  #drainTimer: NodeJS.Timeout | undefined;
  #drainAt = Number.POSITIVE_INFINITY;
  #drainBackoffMs: number;
  #lingerTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  /** The heartbeat round in progress, if one is. */
  #heartbeatRound: Promise<void> | undefined;
  /** forceFlush calls waiting for the in-memory queue to empty (or the process to start exiting). */
  readonly #flushWaiters = new Set<() => void>();
  #epoch = 0;
  #choosing: Promise<Target> | undefined;
  #target: Target | undefined;
  #exiting = false;
  #stopped = false;
  /**
   * The process outlived an exit grace that parked its events: it is not leaving when its shells close, so
   * sends and drains run to the end without a grace, until a new shell opens.
   */
  #runsOn = false;
  readonly #onExit = () => this.#exitNow();

  constructor(deps: SessionDeliveryOptions) {
    this.#o = deps.options;
    this.#log = deps.log;
    this.#mode = deps.mode;
    this.#tracerProvider = deps.tracerProvider;
    this.#drainBackoffMs = this.#o.spoolRetryMs;
    this.#breaker = new Breaker({
      failures: this.#o.breakerFailures,
      resetMs: this.#o.breakerResetMs,
      onStateChange: (state) => {
        this.#log.info(`circuit ${state.replace("_", "-")} (${describeTransport(this.#o.transport)})`);
        // Half-open lets one probe through: let the spool's next event be it. Closed: catch up now.
        if (state === "closed") this.#drainBackoffMs = this.#o.spoolRetryMs;
        if (state !== "open" && !this.#stopped && this.#mode === "live") this.#scheduleDrain(0);
      },
    });
    this.#credentials = new Credentials({
      token: this.#o.token,
      env: this.#o.env,
      ttlSeconds: this.#o.tokenTtlSeconds,
      log: this.#log,
    });
    this.#metrics = new DeliveryMetrics(
      { circuitState: () => this.#breaker.state, spoolDepth: () => this.#spoolDepth },
      deps.meterProvider,
    );
    if (this.#mode === "live") {
      process.on("exit", this.#onExit);
      // Events a previous process left behind: deliver them, away from this program's start-up.
      if (Spool.exists(this.#o.spoolPath)) this.#scheduleDrain(this.#o.startupDrainDelayMs);
    }
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
    if (this.#stopped && !this.#exiting) return;
    this.#sessions.set(keyOf(session), session);
    this.#byStart.set(session.startEventId, session);
    this.#active++;
    this.#runsOn = false;
    this.#cancelLinger();
    const job = this.#job("start", session.startEventId, session, payload);
    if (this.#exiting) {
      this.#spoolJobs([job], "the process is exiting");
      return;
    }
    this.#enqueue(job);
  }

  /** The session's span ended. `ensureStarted` supplies its start when the session was never seen starting. */
  sessionEnded(
    ref: Pick<SessionRef, "traceId" | "spanId">,
    endEventId: string,
    payload: () => EndPayload,
    ensureStarted: () => { session: SessionRef; payload: () => StartPayload },
  ): void {
    if (this.#stopped && !this.#exiting) return;
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
    const job = this.#job("end", endEventId, session, payload);
    if (this.#exiting || session.start === "spool") {
      this.#spoolJobs([job], this.#exiting ? "the process is exiting" : "its start is waiting in the spool");
    } else {
      this.#enqueue(job);
    }
    this.#sessions.delete(keyOf(session));
    // Only live sessions need finding by their start (to learn a session id the spool's drain obtained).
    this.#byStart.delete(session.startEventId);
    if (this.#active === 0) this.#startLinger();
  }

  #job(kind: "start" | "end", eventId: string, session: SessionRef, payload: () => StartPayload | EndPayload): Job {
    let built: StartPayload | EndPayload | undefined;
    return {
      kind,
      eventId,
      session,
      payload: () => {
        built ??= payload();
        return built;
      },
      spooled: false,
      finished: false,
      epoch: this.#epoch,
    };
  }

  #enqueue(job: Job): void {
    if (this.#queue.length >= this.#o.queueMax) {
      this.#spoolJobs([job], `the in-memory queue holds its maximum of ${this.#o.queueMax} events`);
      return;
    }
    this.#queue.push(job);
    this.#owned.add(job.eventId);
    this.#pump();
  }

  // ---- the in-memory worker ----

  #pump(): void {
    if (this.#pumpQueued || this.#stopped) return;
    this.#pumpQueued = true;
    // On a later turn: whatever called us (a span start, the first prompt) finishes first.
    setImmediate(() => {
      this.#pumpQueued = false;
      this.#dispatch();
    });
  }

  /** Starts sending the oldest events whose sessions have nothing in flight, up to the concurrency. */
  #dispatch(): void {
    for (const job of [...this.#queue]) {
      if (this.#sending.size >= this.#o.sendConcurrency || this.#exiting || this.#stopped) return;
      if (job.finished || this.#sending.has(job.session)) continue;
      if (job.kind === "end" && job.session.start === "spool") {
        this.#finish(job);
        this.#spoolJobs([job], "its start is waiting in the spool");
        continue;
      }
      void this.#sendJob(job);
    }
    this.#maybeIdle();
  }

  async #sendJob(job: Job): Promise<void> {
    this.#sending.add(job.session);
    try {
      const outcome = await this.#deliver(job);
      if (job.finished) {
        // Spooled meanwhile by a park: an acknowledgement still clears the spool copy; a failure leaves it.
        if (outcome.ok && !this.#exiting) this.#settle(job, outcome);
        return;
      }
      this.#finish(job);
      this.#settle(job, outcome);
    } catch (error) {
      // Not expected (#deliver sorts every failure); the event stays wherever it is, queue or spool.
      this.#log.warn(`sending ${job.kind} ${job.eventId}: ${(error as Error).message}`);
    } finally {
      this.#sending.delete(job.session);
      if (!this.#exiting && !this.#stopped) this.#dispatch();
    }
  }

  #finish(job: Job): void {
    job.finished = true;
    this.#owned.delete(job.eventId);
    const i = this.#queue.indexOf(job);
    if (i >= 0) this.#queue.splice(i, 1);
    this.#wakeFlushWaiters();
  }

  /** Records the outcome of an in-memory job. */
  #settle(job: Job, outcome: Delivered): void {
    if (outcome.ok) {
      job.session.settled?.(job.eventId, "acked", outcome.trackerSessionId);
      if (job.kind === "start" && outcome.trackerSessionId !== undefined) {
        this.#startAcknowledged(job.session, outcome.trackerSessionId, job.spooled);
      } else if (job.spooled) {
        this.#withSpool((s) => s.remove(job.eventId));
      }
      return;
    }
    const failure = outcome.failure;
    if (job.kind === "start") job.session.start = "spool";
    this.#spoolJobs([job], failure.message, failure);
  }

  #startAcknowledged(session: SessionRef, trackerSessionId: string, spooled: boolean): void {
    session.trackerSessionId = trackerSessionId;
    session.start = "acked";
    if (session.span?.isRecording()) session.span.setAttribute(ATTR_SHELL_TRACKER_SESSION_ID, trackerSessionId);
    // The mapping lets an end spooled later (perhaps by a dying process) find its session id.
    if (spooled || this.#spool) this.#withSpool((s) => s.ackStart(session.startEventId, trackerSessionId));
    if (!session.ended) this.#ensureHeartbeat();
  }

  // ---- one event, with retries and the circuit breaker ----

  async #deliver(job: Job): Promise<Delivered> {
    const type: EventType = job.kind === "start" ? "session_start" : "session_end";
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    this.#metrics.inflight(1);
    try {
      const trackerSessionId = await backOff(
        () => {
          if (this.#isStopped(job)) {
            return Promise.reject(new DeliveryFailure("aborted", "aborted", "delivery was stopped"));
          }
          return this.#breaker.fire(() => this.#send(job));
        },
        {
          numOfAttempts: this.#o.retryAttempts,
          startingDelay: this.#o.retryBaseDelayMs,
          timeMultiple: 2,
          maxDelay: this.#o.retryMaxDelayMs,
          jitter: "full",
          delayFirstAttempt: false,
          retry: (error: unknown) => {
            const failure = classifyError(error);
            if (failure.kind !== "transient" || this.#isStopped(job)) return false;
            if (performance.now() - started >= this.#o.retryMaxElapsedMs) return false;
            this.#metrics.emission(type, "retried");
            this.#log.debug(`${type} ${job.eventId}: ${failure.message}; retrying`);
            return true;
          },
        },
      );
      this.#metrics.emission(type, "success", seconds());
      this.#metrics.exported();
      return { ok: true, ...(trackerSessionId !== undefined ? { trackerSessionId } : {}) };
    } catch (error) {
      const failure = classifyError(error);
      this.#reconsiderTarget(failure);
      const outcome: EmissionOutcome =
        failure.kind === "rejected" ? "rejected" : failure.kind === "short_circuited" ? "short_circuited" : "failed";
      if (failure.kind !== "aborted") this.#metrics.emission(type, outcome, seconds());
      this.#metrics.exported(failure.errorType);
      if (failure.kind === "rejected") {
        const what = failure.auth ? "refused our credentials" : "rejected an event";
        this.#log.warnOnce(
          `rejected:${failure.errorType}`,
          `the tracker ${what} (${failure.errorType}): ${failure.message}. The event stays in the spool ${this.#o.spoolPath}; after fixing, run: shell-sessions spool drain`,
        );
        if (failure.auth) this.#credentials.invalidate();
      } else {
        this.#log.debug(`${type} ${job.eventId} not delivered (${failure.kind}): ${failure.message}`);
      }
      return { ok: false, failure };
    } finally {
      this.#metrics.inflight(-1);
    }
  }

  #isStopped(job: Job): boolean {
    return this.#stopped || this.#exiting || job.epoch < this.#epoch || job.finished;
  }

  /** One tool call. Resolves to the tracker's session id for a start. */
  async #send(job: Job): Promise<string | undefined> {
    const session = job.session;
    // Built first: building the start settles the component name the token is minted for.
    const base = job.payload() as Record<string, unknown>;
    // Chosen before minting: choosing the local store creates the secret the token is signed with.
    await this.#chooseTarget();
    const token = await this.#credentials.tokenFor(session.component);
    const connection = await this.#connection(token);
    const tool = job.kind === "start" ? TOOL_NAMES.start : TOOL_NAMES.end;
    const args: Record<string, unknown> =
      job.kind === "start" ? { ...base } : { ...base, session_id: session.trackerSessionId };
    if (token !== undefined) args.token = token;
    return this.#traced(tool, session, async (meta) => {
      const result = await connection.callTool(tool, args, meta);
      if (job.kind === "start") {
        const parsed = parseToolResult(result, SessionStartResult, tool);
        if (parsed.status === "tracked" && typeof parsed.session_id === "string" && parsed.session_id !== "") {
          return parsed.session_id;
        }
        throw fromResultError(parsed.code, parsed.error, tool);
      }
      const parsed = parseToolResult(result, SessionEndResult, tool);
      if (parsed.status === "ended") return undefined;
      if (parsed.status === "not_found") {
        throw new DeliveryFailure(
          "rejected",
          "not_found",
          `${tool}: the tracker does not know session ${session.trackerSessionId}`,
        );
      }
      throw fromResultError(parsed.code, parsed.error, tool);
    });
  }

  /**
   * Runs one call inside an MCP client span that is a child of the session
   * span, with the trace context in `params._meta`, and with tracing
   * suppressed underneath so our own HTTP requests are not traced again.
   * Heartbeats get no span (`span: false`): one a minute would give an
   * 8-hour session some 480 client spans, and their duration and outcome are
   * metrics already; `_meta` then carries the session span's own context.
   */
  async #traced<T>(
    tool: string,
    session: SessionRef,
    call: (meta: Record<string, string>) => Promise<T>,
    { span: traced = true }: { span?: boolean } = {},
  ): Promise<T> {
    const tracer = (this.#tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE_NAME, CLIENT_INFO.version);
    let parent: Context = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: session.traceId,
      spanId: session.spanId,
      traceFlags: session.traceFlags,
      isRemote: false,
      ...(session.traceState ? { traceState: session.traceState } : {}),
    });
    if (session.baggage) parent = propagation.setBaggage(parent, session.baggage);
    const span = !traced
      ? undefined
      : tracer.startSpan(
          `tools/call ${tool}`,
          {
            kind: SpanKind.CLIENT,
            attributes: {
              [ATTR_MCP_METHOD_NAME]: "tools/call",
              [ATTR_GEN_AI_TOOL_NAME]: tool,
              [ATTR_GEN_AI_OPERATION_NAME]: "execute_tool",
              [ATTR_NETWORK_TRANSPORT]: (this.#target?.transport ?? this.#o.transport).kind === "http" ? "tcp" : "pipe",
            },
          },
          parent,
        );
    const meta: Record<string, string> = {};
    PROPAGATOR.inject(span === undefined ? parent : trace.setSpan(parent, span), meta, META_SETTER);
    const started = performance.now();
    try {
      const result = await context.with(suppressTracing(parent), () => call(meta));
      this.#metrics.operation(tool, (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      const failure = classifyError(error);
      this.#metrics.operation(tool, (performance.now() - started) / 1000, failure.errorType);
      span?.setAttribute(ATTR_ERROR_TYPE, failure.errorType);
      span?.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
      throw failure;
    } finally {
      span?.end();
    }
  }

  /**
   * Where events go: the configured tracker; or, for the embedded default,
   * the default URL if something answers there, else the local store's
   * tracker over stdio (embedded.ts). Decided at the first call, and again
   * after the chosen tracker proved unreachable.
   */
  #chooseTarget(): Promise<Target> {
    this.#choosing ??= (async () => {
      const configured = this.#o.transport;
      if (!this.#o.embedded || configured.kind !== "http" || (await answers(configured.url))) {
        return { transport: configured, env: this.#o.env };
      }
      this.#log.debug(`nothing answers at ${describeTransport(configured)}: recording sessions in the local store`);
      return { transport: embeddedTracker(), env: embeddedEnv(this.#o.env) };
    })().then((target) => {
      this.#target = target;
      return target;
    });
    return this.#choosing;
  }

  /** Forgets the embedded default's choice once its tracker proved unreachable, so the next call looks again. */
  #reconsiderTarget(failure: DeliveryFailure): void {
    if (this.#o.embedded && failure.errorType === "econnrefused" && this.#target !== undefined) {
      this.#choosing = undefined;
      this.#target = undefined;
      this.#closeConnections();
      this.#connections.clear();
    }
  }

  async #connection(token: string | undefined): Promise<McpConnection> {
    const { transport, env } = await this.#chooseTarget();
    // Over HTTP the Bearer header is per connection, so each credential has its own; stdio has one server.
    const key = transport.kind === "stdio" ? "stdio" : (token ?? "");
    let connection = this.#connections.get(key);
    if (!connection) {
      connection = new McpConnection({
        transport,
        timeoutMs: this.#o.callTimeoutMs,
        bearer: transport.kind === "http" ? token : undefined,
        env,
        log: this.#log,
      });
      this.#connections.set(key, connection);
    }
    return connection;
  }

  // ---- heartbeats ----

  #ensureHeartbeat(): void {
    if (this.#heartbeatTimer || this.#o.heartbeatMs <= 0 || this.#mode !== "live") return;
    this.#heartbeatTimer = setInterval(() => {
      // One round at a time: a round slower than the interval (a slow tracker) is not joined by the next.
      if (this.#heartbeatRound !== undefined) return;
      this.#heartbeatRound = this.#heartbeat()
        .catch((error: unknown) => this.#log.debug(`heartbeat round failed: ${classifyError(error).message}`))
        .finally(() => {
          this.#heartbeatRound = undefined;
        });
    }, this.#o.heartbeatMs);
    this.#heartbeatTimer.unref();
  }

  async #heartbeat(): Promise<void> {
    const live = [...this.#sessions.values()].filter((s) => s.start === "acked" && !s.ended);
    if (live.length === 0) {
      clearInterval(this.#heartbeatTimer);
      this.#heartbeatTimer = undefined;
      return;
    }
    for (const session of live) {
      if (this.#stopped || this.#exiting || this.#breaker.state === "open") return;
      const started = performance.now();
      try {
        const token = await this.#credentials.tokenFor(session.component);
        const connection = await this.#connection(token);
        // Heartbeats are an extra of our tracker: only sent where the server lists the tool.
        if (!(await connection.supports(TOOL_NAMES.heartbeat))) return;
        await this.#breaker.fire(() =>
          this.#traced(
            TOOL_NAMES.heartbeat,
            session,
            (meta) =>
              connection.callTool(
                TOOL_NAMES.heartbeat,
                {
                  session_id: session.trackerSessionId,
                  timestamp: new Date().toISOString(),
                  event_type: "heartbeat",
                  ...(token !== undefined ? { token } : {}),
                },
                meta,
              ),
            { span: false },
          ),
        );
        this.#metrics.emission("heartbeat", "success", (performance.now() - started) / 1000);
      } catch (error) {
        // Heartbeats are ephemeral: never retried, never spooled; the next one will do.
        const failure = classifyError(error);
        this.#metrics.emission("heartbeat", failure.kind === "short_circuited" ? "short_circuited" : "failed");
        this.#log.debug(`heartbeat for ${session.trackerSessionId}: ${failure.message}`);
      }
    }
  }

  // ---- the spool ----

  #openSpool(): Spool | undefined {
    if (this.#spool && !this.#spool.closed) return this.#spool;
    if (this.#spoolUnavailable) return undefined;
    try {
      this.#spool = Spool.open(this.#o.spoolPath, {
        limits: { maxEvents: this.#o.spoolMaxEvents, maxBytes: this.#o.spoolMaxBytes },
        onWarning: (m) => this.#log.warn(m),
      });
      this.#spool.prune();
      return this.#spool;
    } catch (error) {
      this.#spoolUnavailable = true;
      this.#log.warn(`cannot open the spool ${this.#o.spoolPath}: ${(error as Error).message}`);
      // Try again later: the disk may come back.
      setTimeout(() => {
        this.#spoolUnavailable = false;
      }, 10_000).unref();
      return undefined;
    }
  }

  #withSpool(run: (spool: Spool) => void): void {
    const spool = this.#openSpool();
    if (!spool) return;
    try {
      run(spool);
      this.#spoolDepth = spool.count();
    } catch (error) {
      this.#log.warn(`spool ${this.#o.spoolPath}: ${(error as Error).message}`);
    }
  }

  /** Writes jobs to the spool synchronously; what cannot be written is counted and logged as lost. */
  #spoolJobs(jobs: Job[], why: string, failure?: DeliveryFailure): void {
    const now = Date.now();
    const inputs: SpoolInput[] = [];
    const byId = new Map<string, Job>();
    for (const job of jobs) {
      let payload: Record<string, unknown>;
      try {
        payload = { ...(job.payload() as Record<string, unknown>) };
      } catch (error) {
        this.#lose(job, `its payload could not be built: ${(error as Error).message}`);
        continue;
      }
      const s = job.session;
      inputs.push({
        eventId: job.eventId,
        kind: job.kind,
        startEventId: s.startEventId,
        trackerSessionId: job.kind === "end" ? s.trackerSessionId : undefined,
        component: s.component,
        localSessionId: s.localSessionId,
        traceId: s.traceId,
        spanId: s.spanId,
        payload,
        state: failure?.kind === "rejected" ? "rejected" : "pending",
        attempts: failure ? 1 : 0,
        lastError: failure?.message,
        nextAttemptAt: failure?.kind === "rejected" ? now + this.#o.rejectedRetryMs : 0,
      });
      byId.set(job.eventId, job);
    }
    if (inputs.length === 0) return;
    const spool = this.#openSpool();
    if (!spool) {
      for (const job of byId.values()) this.#lose(job, `the spool ${this.#o.spoolPath} cannot be opened`);
      return;
    }
    let result: ReturnType<Spool["put"]>;
    try {
      result = spool.put(inputs);
    } catch (error) {
      for (const job of byId.values()) this.#lose(job, `the spool could not be written: ${(error as Error).message}`);
      return;
    }
    for (const id of result.stored) {
      const job = byId.get(id);
      if (!job) continue;
      if (!job.spooled) this.#metrics.emission(job.kind === "start" ? "session_start" : "session_end", "spooled");
      job.spooled = true;
      job.session.settled?.(job.eventId, "spooled");
      if (job.kind === "start" && job.session.start === "memory" && job.finished) job.session.start = "spool";
      this.#log.debug(`spooled ${job.kind} ${job.eventId}: ${why}`);
    }
    for (const { input, reason } of result.lost) {
      const job = byId.get(input.eventId);
      if (job) this.#lose(job, reason, false);
    }
    // Acknowledged already (another process delivered them from the journal or the spool): nothing left to do.
    for (const id of result.delivered) byId.get(id)?.session.settled?.(id, "acked");
    try {
      this.#spoolDepth = spool.count();
    } catch {
      // Depth is only for the gauge.
    }
    if (this.#mode === "live" && !this.#exiting) this.#scheduleDrain(this.#drainBackoffMs);
  }

  #lose(job: Job, reason: string, count = true): void {
    this.#metrics.emission(job.kind === "start" ? "session_start" : "session_end", "lost");
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

  // ---- draining the spool ----

  #scheduleDrain(delayMs: number): void {
    if (this.#stopped || this.#exiting) return;
    const at = Date.now() + delayMs;
    if (this.#drainTimer && this.#drainAt <= at) return;
    clearTimeout(this.#drainTimer);
    this.#drainAt = at;
    this.#drainTimer = setTimeout(() => {
      this.#drainTimer = undefined;
      this.#drainAt = Number.POSITIVE_INFINITY;
      this.drain().then(
        (summary) => {
          if (this.#stopped || this.#exiting) return;
          if (summary.busy) {
            // Another process is draining the same spool: look again soon, it may stop (or die) any time.
            this.#scheduleDrain(this.#o.spoolRetryMs);
          } else if (summary.waiting > summary.rejected) {
            this.#retryDrainLater();
          } else {
            this.#drainBackoffMs = this.#o.spoolRetryMs;
            if (summary.rejected > 0) this.#scheduleDrain(this.#o.rejectedRetryMs);
          }
        },
        (error: unknown) => {
          // Inside someone else's process: a failed pass (say, an unreadable journal directory) is said and
          // retried with backoff, never left as an unhandled rejection that would end the host program.
          this.#log.warnOnce("drain-failed", `draining the spool failed: ${classifyError(error).message}; retrying`);
          if (!this.#stopped && !this.#exiting) this.#retryDrainLater();
        },
      );
    }, delayMs);
    this.#drainTimer.unref();
  }

  /** The next pass after the current backoff, which doubles up to the retry ceiling. */
  #retryDrainLater(): void {
    this.#scheduleDrain(this.#drainBackoffMs);
    this.#drainBackoffMs = Math.min(this.#drainBackoffMs * 2, this.#o.spoolRetryMaxMs);
  }

  /** One pass over the spool, in order. Concurrent calls share the pass in progress. */
  drain(options: DrainOptions = {}): Promise<DrainSummary> {
    if (this.#draining) return this.#draining;
    this.#draining = this.#drainPass(options).finally(() => {
      this.#draining = undefined;
      this.#maybeIdle();
    });
    return this.#draining;
  }

  async #drainPass(options: DrainOptions): Promise<DrainSummary> {
    const summary: DrainSummary = { busy: false, delivered: 0, rejected: 0, failed: 0, quarantined: 0, waiting: 0 };
    if (this.#stopped) return summary;
    // What processes that are gone wrote ahead and no helper took: every pass hands it to the spool first.
    ingestJournals(journalDirOf(this.#o.spoolPath), () => this.#openSpool(), this.#log);
    if (!this.#spool && !Spool.exists(this.#o.spoolPath)) return summary;
    const spool = this.#openSpool();
    if (!spool) return { ...summary, waiting: 0 };
    if (this.#mode === "live" && this.#active === 0) this.#startLinger();
    const epoch = this.#epoch;
    let leased = false;
    try {
      leased = spool.acquireLease(this.#owner, LEASE_TTL_MS, leaseHolderGone);
    } catch (error) {
      this.#log.debug(`drain lease: ${(error as Error).message}`);
    }
    if (!leased) return { ...summary, busy: true, waiting: this.#count(spool) };
    const blocked = new Set<string>();
    let afterSeq = 0;
    let done = 0;
    try {
      outer: for (;;) {
        const rows = spool.batch(afterSeq, DRAIN_BATCH);
        if (rows.length === 0) break;
        for (const row of rows) {
          afterSeq = row.seq;
          if (this.#stopped || this.#exiting || this.#epoch !== epoch) break outer;
          if (options.deadline !== undefined && Date.now() >= options.deadline) break outer;
          if (this.#owned.has(row.eventId) || blocked.has(row.startEventId)) {
            blocked.add(row.startEventId);
            continue;
          }
          const due = options.now === true || row.nextAttemptAt <= Date.now();
          if (!due) {
            blocked.add(row.startEventId);
            continue;
          }
          const job = this.#jobFromRow(spool, row, summary);
          if (job === "skip") {
            blocked.add(row.startEventId);
            continue;
          }
          if (job === "quarantined") continue;
          const outcome = await this.#deliver(job);
          done++;
          if (outcome.ok) {
            summary.delivered++;
            if (job.kind === "start" && outcome.trackerSessionId !== undefined) {
              spool.ackStart(row.eventId, outcome.trackerSessionId);
              const live = this.#byStart.get(row.startEventId);
              if (live) {
                live.start = "acked";
                live.trackerSessionId = outcome.trackerSessionId;
                if (live.span?.isRecording())
                  live.span.setAttribute(ATTR_SHELL_TRACKER_SESSION_ID, outcome.trackerSessionId);
                if (!live.ended) this.#ensureHeartbeat();
              }
            } else {
              spool.remove(row.eventId);
            }
          } else {
            const { failure } = outcome;
            blocked.add(row.startEventId);
            if (failure.kind === "rejected") {
              summary.rejected++;
              spool.markAttempt(row.seq, "rejected", failure.message, Date.now() + this.#o.rejectedRetryMs);
            } else if (failure.kind === "transient") {
              summary.failed++;
              spool.markAttempt(row.seq, "pending", failure.message, 0);
            } else {
              // Open circuit or stopped: the tracker is not answering; the rest waits for the next pass.
              if (failure.kind === "short_circuited") spool.markAttempt(row.seq, "pending", failure.message, 0);
              break outer;
            }
          }
          options.onProgress?.(done, summary);
          spool.acquireLease(this.#owner, LEASE_TTL_MS, leaseHolderGone);
        }
      }
    } catch (error) {
      this.#log.warn(`draining the spool ${this.#o.spoolPath}: ${(error as Error).message}`);
    } finally {
      try {
        spool.releaseLease(this.#owner);
      } catch {
        // The lease expires by itself.
      }
    }
    summary.waiting = this.#count(spool);
    return summary;
  }

  #count(spool: Spool): number {
    try {
      this.#spoolDepth = spool.count();
    } catch {
      // Keep the last known depth.
    }
    return this.#spoolDepth;
  }

  /** A spool row as a job, "skip" when it must wait, or "quarantined" when it could not be read. */
  #jobFromRow(spool: Spool, row: SpoolRow, summary: DrainSummary): Job | "skip" | "quarantined" {
    const quarantine = (reason: string): "quarantined" => {
      spool.quarantine(row.seq, reason);
      summary.quarantined++;
      this.#log.warn(`moved spooled event ${row.eventId} (seq ${row.seq}) to quarantine: ${reason}`);
      return "quarantined";
    };
    let payload: unknown;
    try {
      payload = JSON.parse(row.payload);
    } catch {
      return quarantine("its payload is not JSON");
    }
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      return quarantine("its payload is not a JSON object");
    }
    let trackerSessionId: string | undefined;
    if (row.kind === "start") {
      try {
        validate(SessionStartEvent, payload, "spooled track_session_start payload");
      } catch (error) {
        return quarantine((error as Error).message);
      }
    } else if (row.kind === "end") {
      try {
        validate(SessionEndEvent, { ...payload, session_id: "x" }, "spooled track_session_end payload");
      } catch (error) {
        return quarantine((error as Error).message);
      }
      trackerSessionId = row.trackerSessionId ?? undefined;
      if (trackerSessionId === undefined) {
        const found = spool.locateStart(row.startEventId);
        if (found.where === "mapped") trackerSessionId = found.trackerSessionId;
        else if (found.where === "spooled" || found.where === "rejected") return "skip";
        else if (this.#owned.has(row.startEventId)) return "skip";
        else if (found.where === "quarantined") return quarantine("its start event was quarantined");
        else return quarantine("its start event is not in the spool and its session id is unknown");
      }
    } else {
      return quarantine(`unknown event kind "${row.kind}"`);
    }
    const live = this.#byStart.get(row.startEventId);
    const traceId = row.traceId && /^[0-9a-f]{32}$/.test(row.traceId) ? row.traceId : undefined;
    const spanId = row.spanId && /^[0-9a-f]{16}$/.test(row.spanId) ? row.spanId : undefined;
    const session: SessionRef = {
      startEventId: row.startEventId,
      component: row.component,
      localSessionId: row.localSessionId ?? undefined,
      traceId: traceId ?? "00000000000000000000000000000000",
      spanId: spanId ?? "0000000000000000",
      traceFlags: traceId && spanId ? 1 : 0,
      traceState: live?.traceState,
      baggage: live?.baggage,
      span: undefined,
      trackerSessionId,
      start: row.kind === "start" ? "spool" : "acked",
      ended: true,
    };
    const parsed = payload as StartPayload | EndPayload;
    return {
      kind: row.kind,
      eventId: row.eventId,
      session,
      payload: () => parsed,
      spooled: true,
      finished: false,
      epoch: this.#epoch,
      row,
    };
  }

  // ---- lifetime ----

  /** Once no session is active, delivery may keep the process alive only for the exit grace. */
  #startLinger(): void {
    if (this.#mode !== "live" || this.#lingerTimer || this.#stopped || this.#runsOn) return;
    this.#lingerTimer = setTimeout(() => {
      this.#lingerTimer = undefined;
      if (this.#active === 0 && (this.#queue.length > 0 || this.#draining)) {
        this.#park("the exit grace ran out");
        // Unreferenced, so it fires only if something else keeps the process: then the program runs on
        // after its shells closed (a server with an admin shell), and nothing needs cutting short any more.
        // What was parked is sent from the spool at once, without a grace, not at the next background pass.
        const survived = setTimeout(() => {
          this.#runsOn = true;
          this.#scheduleDrain(0);
        }, this.#o.exitGraceMs);
        survived.unref();
      } else this.#maybeIdle();
    }, this.#o.exitGraceMs);
    this.#lingerTimer.unref();
  }

  #cancelLinger(): void {
    clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
  }

  /** Moves everything in memory to the spool and cuts off calls in flight, so the process can exit. */
  #park(why: string): void {
    this.#epoch++;
    this.#spoolQueue(why);
    this.#closeConnections();
  }

  /** Takes every job off the in-memory queue and writes it to the spool; their sessions' starts now live there. */
  #spoolQueue(why: string): void {
    const jobs = this.#queue.splice(0).filter((j) => !j.finished);
    for (const job of jobs) {
      job.finished = true;
      this.#owned.delete(job.eventId);
      if (job.kind === "start") job.session.start = "spool";
    }
    this.#spoolJobs(jobs, why);
    this.#wakeFlushWaiters();
  }

  #maybeIdle(): void {
    if (this.#mode !== "live") return;
    if (
      this.#active === 0 &&
      this.#queue.length === 0 &&
      this.#sending.size === 0 &&
      !this.#pumpQueued &&
      !this.#draining
    ) {
      // An open connection (an SSE stream, a stdio child) would keep the process alive: close it when idle.
      this.#closeConnections();
      clearInterval(this.#heartbeatTimer);
      this.#heartbeatTimer = undefined;
    }
  }

  #closeConnections(): void {
    for (const connection of this.#connections.values()) connection.reset();
  }

  /** The process `exit` event: only synchronous work is possible now. */
  #exitNow(): void {
    if (this.#exiting) return;
    this.#exiting = true;
    this.#epoch++;
    this.#spoolQueue("the process is exiting");
    clearTimeout(this.#drainTimer);
    clearTimeout(this.#lingerTimer);
    clearInterval(this.#heartbeatTimer);
    if (this.#draining && this.#spool && !this.#spool.closed) {
      try {
        // A drain cut off by the exit must not hold other processes back until its lease runs out.
        this.#spool.releaseLease(this.#owner);
      } catch {
        // The lease runs out by itself.
      }
    }
    // Sessions still open are ended by the instrumentation's own exit handler: their ends are spooled in onEnd.
  }

  /**
   * Writes every unacknowledged event to the spool at once (so nothing is
   * lost if the process dies right after, as after SIGTERM), then gives sends
   * in flight up to the flush timeout to be acknowledged.
   */
  async forceFlush(): Promise<void> {
    const unspooled = this.#queue.filter((j) => !j.finished && !j.spooled);
    if (unspooled.length > 0) this.#spoolJobs(unspooled, "flush");
    if (this.#flushed()) return;
    let wake = () => {};
    const flushed = new Promise<void>((resolve) => {
      wake = resolve;
    });
    this.#flushWaiters.add(wake);
    try {
      // Unreferenced: a flush never keeps the process alive by itself.
      await settledWithin(flushed, this.#o.flushTimeoutMs, { unref: true });
    } finally {
      this.#flushWaiters.delete(wake);
    }
  }

  /** Nothing in memory is still being sent, or the process is leaving (its queue went to the spool). */
  #flushed(): boolean {
    return this.#exiting || !this.#queue.some((j) => !j.finished);
  }

  #wakeFlushWaiters(): void {
    if (this.#flushWaiters.size === 0 || !this.#flushed()) return;
    for (const wake of this.#flushWaiters) wake();
    this.#flushWaiters.clear();
  }

  async shutdown(): Promise<void> {
    if (this.#stopped) return;
    await this.forceFlush();
    this.#stopped = true;
    this.#epoch++;
    const left = this.#queue.filter((j) => !j.finished);
    for (const job of left) this.#finish(job);
    const unspooled = left.filter((j) => !j.spooled);
    if (unspooled.length > 0) this.#spoolJobs(unspooled, "shutdown");
    clearTimeout(this.#drainTimer);
    clearTimeout(this.#lingerTimer);
    clearInterval(this.#heartbeatTimer);
    for (const connection of this.#connections.values()) connection.close();
    this.#connections.clear();
    await this.#draining?.catch(() => {});
    this.#breaker.shutdown();
    process.removeListener("exit", this.#onExit);
    this.#spool?.close();
    this.#spool = undefined;
  }
}

function keyOf(ref: Pick<SessionRef, "traceId" | "spanId">): string {
  return `${ref.traceId}-${ref.spanId}`;
}
