/**
 * The sender: one event to the tracker, as one MCP tool call, with the one
 * retry policy (jittered exponential backoff, transient failures only, within
 * `retryMaxElapsedMs`) and the one circuit breaker every call goes through.
 * It also chooses where events go (the embedded default looks for a tracker
 * first), keeps the connections, mints the credentials, and wraps each call
 * in an MCP client span. It knows nothing of queues or the spool: it answers
 * with what became of the event, and the layers above decide what follows.
 */
import { dirname } from "node:path";
import {
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type TextMapSetter,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import {
  CompositePropagator,
  suppressTracing,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { parseToolResult, SessionEventBatchResult, TOOL_NAMES } from "../contract/index.ts";
import type { Logger } from "../log.ts";
import {
  ATTR_ERROR_TYPE,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_MCP_METHOD_NAME,
  ATTR_NETWORK_TRANSPORT,
  ATTR_SHELL_EVENT_TYPE,
  type EmissionOutcome,
  SCOPE_NAME,
} from "../semconv.ts";
import { Breaker, type CircuitState } from "./breaker.ts";
import {
  acknowledged,
  answerFor,
  BATCH_EVENTS,
  byteBoundedCalls,
  eventArguments,
  settleItem,
  stoppedFailure,
} from "./calls.ts";
import { CLIENT_INFO, type ConnectionOptions, McpConnection } from "./client.ts";
import { Credentials } from "./credentials.ts";
import { answers, embeddedEnv, embeddedTracker } from "./embedded.ts";
import { eraMemory } from "./era-memory.ts";
import { classifyError, DeliveryFailure, fromResultError } from "./errors.ts";
import { type Delivered, eventTypeOf, type Job, type SessionRef } from "./jobs.ts";
import type { DeliveryMetrics } from "./metrics.ts";
import { type DeliveryOptions, describeTransport, type TransportSpec } from "./options.ts";
import { withRetries } from "./retry.ts";

// The trace context in `_meta` is always W3C, whatever OTEL_PROPAGATORS says for the app's own HTTP.
const PROPAGATOR = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
});
const META_SETTER: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/**
 * How long a program must outlive the end of its exit grace to be taken for
 * one that runs on. Programs that are done exit within it (what keeps them a
 * little longer is their own shutdown: a last OTLP export, closing files).
 */
const STILL_HERE_MS = 1_000;

/** What the sender needs of a connection to the tracker (McpConnection; a fake in tests). */
export type Connection = Pick<McpConnection, "callTool" | "supports" | "reset" | "close"> &
  Partial<Pick<McpConnection, "abandonConnect" | "hasTool">>;

/** The tracker events go to, and the environment a stdio tracker is started with. */
interface Target {
  transport: TransportSpec;
  env: NodeJS.ProcessEnv;
}

export interface SenderOptions {
  options: DeliveryOptions;
  log: Logger;
  metrics: DeliveryMetrics;
  tracerProvider?: TracerProvider | undefined;
  /** Told after the circuit changed state (and the change was logged). */
  onCircuitChange?: (state: CircuitState) => void;
  /** Makes a connection; the real MCP client unless a test gives its own. */
  connect?: (options: ConnectionOptions) => Connection;
}

export class Sender {
  readonly #o: DeliveryOptions;
  readonly #log: Logger;
  readonly #metrics: DeliveryMetrics;
  readonly #tracerProvider: TracerProvider | undefined;
  readonly #breaker: Breaker;
  readonly #credentials: Credentials;
  readonly #connections = new Map<string, Connection>();
  readonly #newConnection: (options: ConnectionOptions) => Connection;
  #choosing: Promise<Target> | undefined;
  #target: Target | undefined;
  /** See leaving(). */
  #leaving = false;
  #stillHere: NodeJS.Timeout | undefined;
  /** The tracker listed `track_session_events` at the last connect (an extra of ours; Session-Buddy has none). */
  #batchable = false;

  constructor(deps: SenderOptions) {
    this.#o = deps.options;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#tracerProvider = deps.tracerProvider;
    this.#newConnection = deps.connect ?? ((options) => new McpConnection(options));
    this.#breaker = new Breaker({
      failures: this.#o.breakerFailures,
      resetMs: this.#o.breakerResetMs,
      onStateChange: (state) => {
        this.#log.info(`circuit ${state.replace("_", "-")} (${describeTransport(this.#o.transport)})`);
        deps.onCircuitChange?.(state);
      },
    });
    this.#credentials = new Credentials({
      token: this.#o.token,
      env: this.#o.env,
      ttlSeconds: this.#o.tokenTtlSeconds,
      log: this.#log,
    });
  }

  get circuit(): CircuitState {
    return this.#breaker.state;
  }

  /**
   * Sends one event, retrying transient failures until `stopped()` says the
   * event is no longer ours to send (parked, exiting) or the retry budget is
   * spent. Never rejects: every failure comes back classified.
   */
  async deliver(job: Job, stopped: () => boolean): Promise<Delivered> {
    const type = eventTypeOf(job.kind);
    const started = performance.now();
    this.#metrics.inflight(1);
    try {
      const trackerSessionId = await withRetries(
        () => {
          if (stopped()) return Promise.reject(stoppedFailure());
          return this.#breaker.fire(() => this.#send(job));
        },
        this.#retryPolicy(started, stopped, (failure) => {
          this.#metrics.emission(type, "retried");
          this.#log.debug(`${type} ${job.eventId}: ${failure.message}; retrying`);
        }),
      );
      this.#delivered(job, started);
      return acknowledged(trackerSessionId);
    } catch (error) {
      return { ok: false, failure: this.#failed(job, classifyError(error), (performance.now() - started) / 1000) };
    } finally {
      this.#metrics.inflight(-1);
    }
  }

  /** How many events one call may carry now: more than one once the tracker has listed its batch tool. */
  get batchSize(): number {
    return this.#batchable ? BATCH_EVENTS : 1;
  }

  /**
   * Sends events of one component, each of a different session, and answers
   * for each in order. Where the tracker has the batch tool they go in as few
   * `track_session_events` calls as their size allows; else one call each.
   */
  async deliverMany(jobs: Job[], stopped: (job: Job) => boolean): Promise<Delivered[]> {
    const calls = this.#batchable ? byteBoundedCalls(jobs) : jobs.map((job) => [job]);
    const answers = await Promise.all(
      calls.map(async (call) => {
        const [only] = call;
        if (call.length === 1 && only !== undefined) return [await this.deliver(only, () => stopped(only))];
        return this.#deliverBatch(call, stopped);
      }),
    );
    return answers.flat();
  }

  /**
   * One batch with the retry policy: what the tracker acknowledged or
   * refused is settled; the events that failed transiently (the whole call,
   * or some of its events) go again together, until the budget is spent.
   */
  async #deliverBatch(jobs: Job[], stopped: (job: Job) => boolean): Promise<Delivered[]> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    const outcomes = new Map<Job, Delivered>();
    const fail = (job: Job, failure: DeliveryFailure) =>
      outcomes.set(job, { ok: false, failure: this.#failed(job, failure, seconds()) });
    let pending = jobs;
    this.#metrics.inflight(jobs.length);
    try {
      await withRetries(
        async () => {
          for (const job of pending.filter(stopped)) fail(job, stoppedFailure());
          pending = pending.filter((job) => !stopped(job));
          if (pending.length === 0) return;
          const answers = await this.#breaker.fire(() => this.#sendBatch(pending));
          const again: Job[] = [];
          let transient: DeliveryFailure | undefined;
          pending.forEach((job, i) => {
            const answer = answers[i] as Delivered;
            if (answer.ok) {
              this.#delivered(job, started);
              outcomes.set(job, answer);
            } else if (answer.failure.kind === "transient") {
              again.push(job);
              transient = answer.failure;
            } else {
              fail(job, answer.failure);
            }
          });
          pending = again;
          if (transient !== undefined) throw transient;
        },
        this.#retryPolicy(
          started,
          () => pending.every(stopped),
          (failure) => {
            for (const job of pending) this.#metrics.emission(eventTypeOf(job.kind), "retried");
            this.#log.debug(`a batch of ${pending.length} events: ${failure.message}; retrying`);
          },
        ),
      );
    } catch (error) {
      const failure = classifyError(error);
      for (const job of pending) if (!outcomes.has(job)) fail(job, failure);
    } finally {
      this.#metrics.inflight(-jobs.length);
    }
    return jobs.map((job) => outcomes.get(job) ?? { ok: false, failure: stoppedFailure() });
  }

  /** The one retry policy: transient failures, within the attempts and `retryMaxElapsedMs`, while not stopped. */
  #retryPolicy(started: number, stopped: () => boolean, retrying: (failure: DeliveryFailure) => void) {
    return {
      attempts: this.#o.retryAttempts,
      baseDelayMs: this.#o.retryBaseDelayMs,
      maxDelayMs: this.#o.retryMaxDelayMs,
      retry: (error: unknown) => {
        const failure = classifyError(error);
        if (failure.kind !== "transient" || stopped()) return false;
        if (performance.now() - started >= this.#o.retryMaxElapsedMs) return false;
        retrying(failure);
        return true;
      },
    };
  }

  #delivered(job: Job, started: number): void {
    this.#metrics.emission(eventTypeOf(job.kind), "success", (performance.now() - started) / 1000);
    this.#metrics.exported();
  }

  /** Counts, logs and reacts to an event's final failure. */
  #failed(job: Job, failure: DeliveryFailure, seconds: number): DeliveryFailure {
    const type = eventTypeOf(job.kind);
    this.#reconsiderTarget(failure);
    const outcome: EmissionOutcome =
      failure.kind === "rejected" ? "rejected" : failure.kind === "short_circuited" ? "short_circuited" : "failed";
    if (failure.kind !== "aborted") this.#metrics.emission(type, outcome, seconds);
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
    return failure;
  }

  /** One tool call. Resolves to the tracker's session id for a start. */
  async #send(job: Job): Promise<string | undefined> {
    const session = job.session;
    // Built first: building the start settles the component name the token is minted for.
    const args = eventArguments(job);
    const { token, connection } = await this.#connect(session);
    const tool = job.kind === "start" ? TOOL_NAMES.start : TOOL_NAMES.end;
    if (token !== undefined) args.token = token;
    const answer = await this.#traced(tool, parentContext(session), async (meta) =>
      answerFor(job, await connection.callTool(tool, args, meta)),
    );
    this.#batchable = connection.hasTool?.(TOOL_NAMES.batch) ?? false;
    return answer;
  }

  /**
   * One `track_session_events` call for events of one component, answered
   * per event. If the tracker no longer lists the tool (replaced since the
   * last connect), each event goes in its own call instead.
   */
  async #sendBatch(jobs: Job[]): Promise<Delivered[]> {
    const events = jobs.map(eventArguments);
    const { token, connection } = await this.#connect((jobs[0] as Job).session);
    if (!(await connection.supports(TOOL_NAMES.batch))) {
      this.#batchable = false;
      return Promise.all(jobs.map((job) => settleItem(() => this.#send(job))));
    }
    const args: Record<string, unknown> = { events, ...(token !== undefined ? { token } : {}) };
    // One span for the call, linked to each session's span (a batch belongs to no one trace); each link says which event.
    const links: Link[] = jobs.map((job) => ({
      context: trace.getSpanContext(parentContext(job.session)) as SpanContext,
      attributes: { [ATTR_SHELL_EVENT_TYPE]: eventTypeOf(job.kind) },
    }));
    return this.#traced(
      TOOL_NAMES.batch,
      ROOT_CONTEXT,
      async (meta) => {
        const result = await connection.callTool(TOOL_NAMES.batch, args, meta);
        const parsed = parseToolResult(result, SessionEventBatchResult, TOOL_NAMES.batch);
        if (parsed.status !== "ok") throw fromResultError(parsed.code, parsed.error, TOOL_NAMES.batch);
        if (parsed.results.length !== jobs.length) {
          throw new DeliveryFailure(
            "transient",
            "internal",
            `${TOOL_NAMES.batch}: ${parsed.results.length} results for ${jobs.length} events`,
          );
        }
        return Promise.all(
          jobs.map((job, i) => settleItem(async () => answerFor(job, { structuredContent: parsed.results[i] }))),
        );
      },
      { links },
    );
  }

  /**
   * One heartbeat for a session the tracker acknowledged, through the
   * breaker and never retried: the next one will do. False when the tracker
   * lists no heartbeat tool (an extra of our tracker), so none need be tried.
   */
  async heartbeat(session: SessionRef): Promise<boolean> {
    const started = performance.now();
    try {
      const { token, connection } = await this.#connect(session);
      if (!(await connection.supports(TOOL_NAMES.heartbeat))) return false;
      const args = {
        session_id: session.trackerSessionId,
        timestamp: new Date().toISOString(),
        event_type: "heartbeat",
        ...(token !== undefined ? { token } : {}),
      };
      await this.#breaker.fire(() =>
        this.#traced(
          TOOL_NAMES.heartbeat,
          parentContext(session),
          (meta) => connection.callTool(TOOL_NAMES.heartbeat, args, meta),
          { span: false },
        ),
      );
      this.#metrics.emission("heartbeat", "success", (performance.now() - started) / 1000);
    } catch (error) {
      const failure = classifyError(error);
      this.#metrics.emission("heartbeat", failure.kind === "short_circuited" ? "short_circuited" : "failed");
      this.#log.debug(`heartbeat for ${session.trackerSessionId}: ${failure.message}`);
    }
    return true;
  }

  /** The credential and connection for a session's component. */
  async #connect(session: SessionRef): Promise<{ token: string | undefined; connection: Connection }> {
    // Chosen before minting: choosing the local store creates the secret the token is signed with.
    const { transport, env } = await this.#chooseTarget();
    const token = await this.#credentials.tokenFor(session.component);
    // Over HTTP the Bearer header is per connection, so each credential has its own; stdio has one server.
    const key = transport.kind === "stdio" ? "stdio" : (token ?? "");
    let connection = this.#connections.get(key);
    if (!connection) {
      connection = this.#newConnection({
        transport,
        timeoutMs: this.#o.callTimeoutMs,
        bearer: transport.kind === "http" ? token : undefined,
        env,
        log: this.#log,
        eras: eraMemory(dirname(this.#o.spoolPath), transport),
        mayProbe: () => !this.#leaving,
      });
      this.#connections.set(key, connection);
    }
    return { token, connection };
  }

  /**
   * Runs one call inside an MCP client span that is a child of `parent` (the
   * session span; nothing for a batch, which links to its sessions' spans),
   * with the trace context in `params._meta`, and with tracing suppressed
   * underneath so our own HTTP requests are not traced again. Heartbeats get
   * no span (`span: false`): one a minute would give an 8-hour session some
   * 480 client spans, and their duration and outcome are metrics already;
   * `_meta` then carries the session span's own context.
   */
  async #traced<T>(
    tool: string,
    parent: Context,
    call: (meta: Record<string, string>) => Promise<T>,
    { span: traced = true, links }: { span?: boolean; links?: Link[] } = {},
  ): Promise<T> {
    const span = traced ? this.#clientSpan(tool, parent, links) : undefined;
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

  #clientSpan(tool: string, parent: Context, links: Link[] | undefined) {
    const tracer = (this.#tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE_NAME, CLIENT_INFO.version);
    const transport = this.#target?.transport ?? this.#o.transport;
    return tracer.startSpan(
      `tools/call ${tool}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [ATTR_MCP_METHOD_NAME]: "tools/call",
          [ATTR_GEN_AI_TOOL_NAME]: tool,
          [ATTR_GEN_AI_OPERATION_NAME]: "execute_tool",
          [ATTR_NETWORK_TRANSPORT]: transport.kind === "http" ? "tcp" : "pipe",
        },
        ...(links !== undefined ? { links } : {}),
      },
      parent,
    );
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
      this.#batchable = false;
      this.closeConnections();
    }
  }

  /** Lets the connections go (a stdio tracker it spawned exits); the next call reconnects. Aborts calls in flight. */
  resetConnections(): void {
    for (const connection of this.#connections.values()) connection.reset();
  }

  /**
   * The program seems to be leaving (its last shell ended and the exit grace
   * passed): connects that are probing the tracker's era are given up, and
   * none is started, since the SDK's probe would hold the process until the
   * tracker answered it. If the program is still here a moment later, it runs
   * on (a server with an admin shell): probing is allowed again, and what
   * waited goes out on the spool's next pass.
   */
  leaving(): void {
    this.#leaving = true;
    clearTimeout(this.#stillHere);
    this.#stillHere = setTimeout(() => this.staying(), STILL_HERE_MS).unref();
    for (const connection of this.#connections.values()) connection.abandonConnect?.();
  }

  /** The program is not leaving after all (a shell opened, or it outlived `leaving()` by a moment). */
  staying(): void {
    this.#leaving = false;
    clearTimeout(this.#stillHere);
  }

  /** Closes every connection for good (a stdio tracker it spawned exits). */
  closeConnections(): void {
    for (const connection of this.#connections.values()) connection.close();
    this.#connections.clear();
  }

  /** Stops the breaker's timers; after the last call that may go through it. */
  shutdown(): void {
    this.#breaker.shutdown();
  }
}

/** The session span as the parent of a call, with the session's baggage. */
function parentContext(session: SessionRef): Context {
  const parent = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: session.traceId,
    spanId: session.spanId,
    traceFlags: session.traceFlags,
    isRemote: false,
    ...(session.traceState ? { traceState: session.traceState } : {}),
  });
  return session.baggage ? propagation.setBaggage(parent, session.baggage) : parent;
}
