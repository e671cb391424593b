/**
 * The tracker's own telemetry, through `@opentelemetry/api` only: one SERVER
 * span per tool call (joining the caller's trace from `params._meta`), the
 * operation-duration histogram, and the session counters and gauge.
 *
 * Instruments are created when the telemetry object is built, so the SDK (if
 * any) must be started before: the metrics API has no proxy that would pick up
 * a provider registered later.
 */

import { ProtocolError, ProtocolErrorCode } from "@modelcontextprotocol/server";
import {
  type Attributes,
  type Context,
  type Counter,
  type Histogram,
  metrics,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { ExitReason } from "../contract/schemas.ts";
import { TOOL_NAMES, TRACE_META_KEYS } from "../contract/tools.ts";
import { version as packageVersion } from "../package-info.ts";
import {
  ATTR_ERROR_TYPE,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_JSONRPC_REQUEST_ID,
  ATTR_MCP_METHOD_NAME,
  ATTR_MCP_PROTOCOL_VERSION,
  ATTR_MCP_SESSION_ID,
  ATTR_NETWORK_TRANSPORT,
  ATTR_SESSION_ID,
  ATTR_SHELL_COMPONENT_NAME,
  ATTR_SHELL_EXIT_REASON,
  ATTR_SHELL_TOOL_STATUS,
  ATTR_SHELL_TRACKER_SESSION_ID,
  METRIC_MCP_SERVER_OPERATION_DURATION,
  METRIC_SHELL_TRACKER_SESSIONS_ABANDONED,
  METRIC_SHELL_TRACKER_SESSIONS_ACTIVE,
  METRIC_SHELL_TRACKER_SESSIONS_ENDED,
  METRIC_SHELL_TRACKER_SESSIONS_STARTED,
  SCOPE_NAME,
} from "../semconv.ts";

export const METHOD_TOOLS_CALL = "tools/call";
export const OPERATION_EXECUTE_TOOL = "execute_tool";

/** Bucket boundaries the MCP semantic conventions recommend for operation durations. */
const DURATION_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];

/** Only string values under the W3C keys are read from `_meta`: it is caller-controlled. */
const metaGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => TRACE_META_KEYS.filter((k) => typeof carrier[k] === "string"),
  get: (carrier, key) => {
    if (!(TRACE_META_KEYS as readonly string[]).includes(key)) return undefined;
    const value = carrier[key];
    return typeof value === "string" ? value : undefined;
  },
};

/**
 * `_meta` carries W3C keys whatever the caller's or this process's propagator
 * settings (the MCP convention, and what the exporter writes), so it is read
 * with the W3C propagators: the global one follows `OTEL_PROPAGATORS`, which
 * is about this server's own HTTP and may well be `b3`.
 */
const META_PROPAGATOR = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
});

/** The caller's trace context from a request's `params._meta`, or the root context. */
export function contextFromMeta(meta: unknown): Context {
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) return ROOT_CONTEXT;
  return META_PROPAGATOR.extract(ROOT_CONTEXT, meta as Record<string, unknown>, metaGetter);
}

/** The label for an exit reason outside the contract's list: client text never becomes a label value. */
export const OTHER_EXIT_REASON = "other";
/** Distinct component labels kept at most; later ones share `_OTHER` (components come from tokens, or any caller without auth). */
export const MAX_COMPONENT_LABELS = 200;
export const OTHER_COMPONENT = "_OTHER";

/** An exit reason as a metric label: one of the contract's reasons, `unknown` when absent, else `other`. */
export function exitReasonLabel(reason: string | null): string {
  if (reason === null) return "unknown";
  return ExitReason.safeParse(reason).success ? reason : OTHER_EXIT_REASON;
}

export interface ToolCallFacts {
  tool: string;
  requestId: string | number;
  transport: "tcp" | "pipe";
  mcpSessionId?: string | undefined;
  /** The MCP revision the request was served under (2026-07-28, or a handshake-era version). */
  protocolVersion?: string | undefined;
  meta?: unknown;
}

export interface ToolCallOutcome {
  status: string;
  /** Set for results that are failures (status error or not_found): the error code. */
  errorType?: string | undefined;
  /** The tracker's id (`sess_…`): `shell.tracker.session_id` on the span. */
  sessionId?: string | null | undefined;
  /**
   * The shell's own id, from the start's metadata: `session.id` on the span,
   * as on the shell's session span, so `session.id` means one thing in a trace.
   */
  localSessionId?: string | undefined;
  component?: string | undefined;
}

export class ServerTelemetry {
  readonly #tracer = trace.getTracer(SCOPE_NAME, packageVersion);
  readonly #duration: Histogram;
  readonly #started: Counter;
  readonly #ended: Counter;
  readonly #abandoned: Counter;
  readonly #components = new Set<string>();
  #active = 0;

  constructor() {
    const meter = metrics.getMeter(SCOPE_NAME, packageVersion);
    this.#duration = meter.createHistogram(METRIC_MCP_SERVER_OPERATION_DURATION, {
      unit: "s",
      description: "Duration of MCP requests handled by the tracker, by tool and outcome.",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.#started = meter.createCounter(METRIC_SHELL_TRACKER_SESSIONS_STARTED, {
      unit: "{session}",
      description: "Sessions the tracker started (replayed starts are not counted).",
    });
    this.#ended = meter.createCounter(METRIC_SHELL_TRACKER_SESSIONS_ENDED, {
      unit: "{session}",
      description: "Sessions the tracker ended, by exit reason (repeated ends are not counted).",
    });
    this.#abandoned = meter.createCounter(METRIC_SHELL_TRACKER_SESSIONS_ABANDONED, {
      unit: "{session}",
      description: "Sessions marked abandoned because their lease expired.",
    });
    // Read from memory, never from the store, so a scrape costs no query.
    meter
      .createObservableGauge(METRIC_SHELL_TRACKER_SESSIONS_ACTIVE, {
        unit: "{session}",
        description: "Sessions currently active in the store, as last counted by this instance.",
      })
      .addCallback((result) => result.observe(this.#active));
  }

  /**
   * Runs `handler` inside a SERVER span named `tools/call <tool>`, parented by
   * the trace context the caller put in `_meta`, and records its duration.
   */
  async toolCall<T>(facts: ToolCallFacts, handler: () => Promise<{ value: T; outcome: ToolCallOutcome }>): Promise<T> {
    // Heartbeats are measured, not traced: a span each would give an 8-hour session some 480 server spans.
    if (facts.tool === TOOL_NAMES.heartbeat) return this.#measured(facts, undefined, handler);
    const attributes: Attributes = {
      [ATTR_MCP_METHOD_NAME]: METHOD_TOOLS_CALL,
      [ATTR_GEN_AI_TOOL_NAME]: facts.tool,
      [ATTR_GEN_AI_OPERATION_NAME]: OPERATION_EXECUTE_TOOL,
      [ATTR_JSONRPC_REQUEST_ID]: String(facts.requestId),
      [ATTR_NETWORK_TRANSPORT]: facts.transport,
      ...(facts.mcpSessionId ? { [ATTR_MCP_SESSION_ID]: facts.mcpSessionId } : {}),
      ...(facts.protocolVersion ? { [ATTR_MCP_PROTOCOL_VERSION]: facts.protocolVersion } : {}),
    };
    return this.#tracer.startActiveSpan(
      `${METHOD_TOOLS_CALL} ${facts.tool}`,
      { kind: SpanKind.SERVER, attributes },
      contextFromMeta(facts.meta),
      (span: Span) => this.#measured(facts, span, handler),
    );
  }

  /** Runs `handler`, records its duration and outcome, and puts the outcome on `span` if there is one. */
  async #measured<T>(
    facts: ToolCallFacts,
    span: Span | undefined,
    handler: () => Promise<{ value: T; outcome: ToolCallOutcome }>,
  ): Promise<T> {
    const started = performance.now();
    let outcome: ToolCallOutcome = { status: "error", errorType: "internal" };
    try {
      const { value, outcome: o } = await handler();
      outcome = o;
      return value;
    } catch (error) {
      span?.recordException(error instanceof Error ? error : String(error));
      // A protocol error (an unknown tool) is the caller's mistake, not ours.
      if (error instanceof ProtocolError && error.code === ProtocolErrorCode.InvalidParams) {
        outcome = { status: "error", errorType: "invalid_argument" };
      }
      throw error;
    } finally {
      if (span !== undefined) {
        if (outcome.sessionId) span.setAttribute(ATTR_SHELL_TRACKER_SESSION_ID, outcome.sessionId);
        if (outcome.localSessionId) span.setAttribute(ATTR_SESSION_ID, outcome.localSessionId);
        if (outcome.component) span.setAttribute(ATTR_SHELL_COMPONENT_NAME, outcome.component);
        span.setAttribute(ATTR_SHELL_TOOL_STATUS, outcome.status);
        if (outcome.errorType) {
          span.setAttribute(ATTR_ERROR_TYPE, outcome.errorType);
          if (outcome.status === "error") span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.errorType });
        }
        span.end();
      }
      this.#duration.record((performance.now() - started) / 1000, {
        [ATTR_MCP_METHOD_NAME]: METHOD_TOOLS_CALL,
        [ATTR_GEN_AI_TOOL_NAME]: facts.tool,
        [ATTR_SHELL_TOOL_STATUS]: outcome.status,
        ...(outcome.errorType ? { [ATTR_ERROR_TYPE]: outcome.errorType } : {}),
      });
    }
  }

  /** A component name as a label value: the first MAX_COMPONENT_LABELS seen keep their name. */
  componentLabel(component: string): string {
    if (this.#components.has(component)) return component;
    if (this.#components.size >= MAX_COMPONENT_LABELS) return OTHER_COMPONENT;
    this.#components.add(component);
    return component;
  }

  sessionStarted(component: string): void {
    this.#started.add(1, { [ATTR_SHELL_COMPONENT_NAME]: this.componentLabel(component) });
    this.#active++;
  }

  /** `wasActive`: false when an abandoned session's late end arrives (it had already left the active count). */
  sessionEnded(component: string, exitReason: string | null, wasActive: boolean): void {
    this.#ended.add(1, {
      [ATTR_SHELL_COMPONENT_NAME]: this.componentLabel(component),
      [ATTR_SHELL_EXIT_REASON]: exitReasonLabel(exitReason),
    });
    if (wasActive) this.#active = Math.max(0, this.#active - 1);
  }

  sessionRevived(): void {
    this.#active++;
  }

  sessionsAbandoned(components: readonly string[]): void {
    for (const component of components) {
      this.#abandoned.add(1, { [ATTR_SHELL_COMPONENT_NAME]: this.componentLabel(component) });
    }
    this.#active = Math.max(0, this.#active - components.length);
  }

  /** The store's own count, which also takes in other instances' writes on a shared database. */
  setActive(count: number): void {
    this.#active = count;
  }

  get active(): number {
    return this.#active;
  }
}
