/**
 * A recorded shell session as telemetry: its `shell.session` span, optional
 * `shell.eval` child spans, its metrics, and what the shell itself shows of
 * it (the banner and the `session` object).
 */
import { isatty } from "node:tty";
import {
  type Attributes,
  type Context,
  context,
  type DiagLogger,
  defaultTextMapGetter,
  isSpanContextValid,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { ReadableSpan, Span as SdkSpan, SpanProcessor } from "@opentelemetry/sdk-trace";
import type { SessionMetrics } from "./metrics.ts";
import { applyRedactor, defaultRedact } from "./redact.ts";
import {
  ATTR_ERROR_TYPE,
  ATTR_PROCESS_INTERACTIVE,
  ATTR_SESSION_ID,
  ATTR_SHELL_ADAPTERS,
  ATTR_SHELL_COMPONENT_NAME,
  ATTR_SHELL_COMPONENT_VERSION,
  ATTR_SHELL_EVAL_COUNT,
  ATTR_SHELL_EVAL_ERROR_COUNT,
  ATTR_SHELL_EVAL_INDEX,
  ATTR_SHELL_EVAL_INPUT,
  ATTR_SHELL_EXIT_REASON,
  ATTR_SHELL_SESSION_DURATION,
  ATTR_SHELL_TYPE,
  DEFAULT_CONTEXT_NAME,
  SPAN_NAME_EVAL,
  SPAN_NAME_SESSION,
} from "./semconv.ts";
import type { EvalScope, SessionObserver, ShellSession } from "./session.ts";
import { envFlag, type ResolvedShell } from "./shell.ts";
import type { SessionInfo, ShellSessionInstrumentationConfig } from "./types.ts";

/** Longest input text recorded on a `shell.eval` span. */
export const MAX_INPUT_LENGTH = 4096;

export interface SessionSpanDeps {
  readonly tracer: Tracer;
  readonly metrics: SessionMetrics;
  readonly config: ShellSessionInstrumentationConfig;
  /** Processors that see session spans directly, when the tracer provider is not ours to extend. */
  readonly forward: readonly SpanProcessor[];
  readonly diag: DiagLogger;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * `error.type` of a thrown value: its class name, never its message (which
 * can quote the input). Values thrown inside a REPL come from the REPL's own
 * realm, so this looks at the constructor's name rather than `instanceof Error`.
 */
export function errorType(error: unknown): string {
  if (typeof error === "object" && error !== null) {
    const name = (error as { constructor?: { name?: unknown } }).constructor?.name;
    if (typeof name === "string" && /^[A-Za-z_$][\w$]{0,99}$/.test(name)) return name;
    return "_OTHER";
  }
  return typeof error;
}

export class SessionSpan implements SessionObserver {
  readonly span: Span;
  readonly traceId: string;
  readonly spanId: string;
  readonly #spanContext: Context;
  readonly #deps: SessionSpanDeps;
  readonly #session: ShellSession;
  readonly #metricAttributes: Attributes;
  readonly #recording: boolean;
  #info: SessionInfo | undefined;
  #onReset: ((ctx: unknown) => void) | undefined;

  constructor(session: ShellSession, deps: SessionSpanDeps) {
    this.#session = session;
    this.#deps = deps;
    session.applyConfig(deps.config);
    const shell = session.shell;
    // Session facts only: the host, the process and its owner are the resource's (the SDK's detectors
    // put them there, and `OTEL_NODE_RESOURCE_DETECTORS` decides which), not copied onto every span.
    const attributes: Attributes = {
      [ATTR_SESSION_ID]: session.id,
      [ATTR_PROCESS_INTERACTIVE]: isatty(0),
      ...shellAttributes(shell),
    };

    // A session is its own trace, even when the shell is opened from code running inside another span.
    this.span = deps.tracer.startSpan(
      SPAN_NAME_SESSION,
      { kind: SpanKind.INTERNAL, startTime: session.startTime, attributes, root: true, links: launcherLinks() },
      ROOT_CONTEXT,
    );
    this.#spanContext = trace.setSpan(ROOT_CONTEXT, this.span);
    const ids = this.span.spanContext();
    this.traceId = ids.traceId;
    this.spanId = ids.spanId;
    if (isSpanContextValid(ids)) session.adoptTrace(ids.traceId, ids.spanId);
    this.#recording = this.span.isRecording();
    this.#metricAttributes = {
      [ATTR_SHELL_COMPONENT_NAME]: shell.component,
      [ATTR_SHELL_TYPE]: shell.shellType,
    };

    if (this.#recording) {
      for (const processor of deps.forward) {
        this.#guard("onStart", () => processor.onStart(this.span as SdkSpan, ROOT_CONTEXT));
      }
    }
    this.#guard("metrics", () => {
      deps.metrics.started.add(1, this.#metricAttributes);
      deps.metrics.active.add(1, this.#metricAttributes);
    });

    if (!session.ended && isSpanContextValid(ids)) {
      this.#info = Object.freeze({
        id: session.id,
        traceId: this.traceId,
        spanId: this.spanId,
        component: shell.component,
        shellType: shell.shellType,
        startedAt: new Date(session.startTime).toISOString(),
      });
      this.#guard("context", () => this.#exposeInShell());
      this.#guard("banner", () => this.#printBanner());
    }
  }

  reconfigured(session: ShellSession): void {
    if (session.ended) return;
    this.#guard("reconfigure", () => {
      this.span.setAttributes(shellAttributes(session.shell));
    });
  }

  beginEval(session: ShellSession, input: string): EvalScope | undefined {
    const config = this.#deps.config;
    if (!(config.evalSpans ?? envFlag(this.#deps.env.SHELL_SESSIONS_EVAL_SPANS))) {
      // Even without per-input spans, what an input does joins the session's trace.
      const ctx = this.#spanContext;
      return { run: (fn) => context.with(ctx, fn), end() {}, discard() {} };
    }
    const attributes: Attributes = {
      [ATTR_SESSION_ID]: session.id,
      [ATTR_SHELL_EVAL_INDEX]: session.evalCount + 1,
    };
    if (config.captureInput ?? envFlag(this.#deps.env.SHELL_SESSIONS_CAPTURE_INPUT)) {
      const text = applyRedactor(config.redactInput ?? defaultRedact, input.replace(/\n$/, ""));
      if (text !== undefined) attributes[ATTR_SHELL_EVAL_INPUT] = text.slice(0, MAX_INPUT_LENGTH);
    }
    const span = this.#deps.tracer.startSpan(
      SPAN_NAME_EVAL,
      { kind: SpanKind.INTERNAL, attributes },
      this.#spanContext,
    );
    const ctx = trace.setSpan(this.#spanContext, span);
    return {
      run: (fn) => context.with(ctx, fn),
      end: (error) => {
        if (error !== undefined) {
          span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
        span.end();
      },
      // Left unended, the span is never exported: an incomplete line is not an input of its own.
      discard() {},
    };
  }

  ended(session: ShellSession): void {
    const endTime = session.endTime ?? Date.now();
    const seconds = Math.max(0, (endTime - session.startTime) / 1000);
    const reason = session.exitReason ?? "closed";
    this.#guard("end", () => {
      this.span.setAttributes({
        [ATTR_SHELL_EXIT_REASON]: reason,
        [ATTR_SHELL_EVAL_COUNT]: session.evalCount,
        [ATTR_SHELL_EVAL_ERROR_COUNT]: session.evalErrorCount,
        [ATTR_SHELL_SESSION_DURATION]: seconds,
      });
      if (reason === "uncaught_error") {
        this.span.setAttribute(ATTR_ERROR_TYPE, errorType(session.fatalError));
        this.span.setStatus({ code: SpanStatusCode.ERROR });
      }
      this.span.end(endTime);
    });
    if (this.#recording) {
      for (const processor of this.#deps.forward) {
        this.#guard("onEnd", () => processor.onEnd(this.span as unknown as ReadableSpan));
      }
    }
    this.#guard("metrics", () => {
      const metrics = this.#deps.metrics;
      metrics.active.add(-1, this.#metricAttributes);
      metrics.duration.record(seconds, this.#metricAttributes);
      metrics.ended.add(1, { ...this.#metricAttributes, [ATTR_SHELL_EXIT_REASON]: reason });
    });
    if (this.#onReset !== undefined) {
      (session.server as unknown as NodeJS.EventEmitter).removeListener("reset", this.#onReset);
      this.#onReset = undefined;
    }
  }

  /** Puts the `session` object into the shell's context, and back after `.clear` resets it. */
  #exposeInShell(): void {
    const name = this.#deps.config.contextName ?? DEFAULT_CONTEXT_NAME;
    const info = this.#info;
    if (name === false || name === "" || info === undefined) return;
    const server = this.#session.server as unknown as NodeJS.EventEmitter & { context?: unknown };
    const expose = (ctx: unknown) => {
      if (typeof ctx !== "object" || ctx === null || name in ctx) return;
      Object.defineProperty(ctx, name, { value: info, writable: true, configurable: true, enumerable: false });
    };
    expose(server.context);
    this.#onReset = (ctx) => this.#guard("context", () => expose(ctx));
    server.on("reset", this.#onReset);
  }

  /** Writes the banner above the prompt the REPL has already shown, then redraws the prompt and the line being typed. */
  #printBanner(): void {
    const config = this.#deps.config;
    if (!(config.banner ?? envFlag(this.#deps.env.SHELL_SESSIONS_BANNER) ?? true)) return;
    const server = this.#session.server as unknown as {
      output?: NodeJS.WritableStream & { destroyed?: boolean; writable?: boolean };
      terminal?: boolean;
      closed?: boolean;
      displayPrompt?: (preserveCursor?: boolean) => void;
    };
    const output = server.output;
    if (output === undefined || typeof output.write !== "function" || output.destroyed || output.writable === false) {
      return;
    }
    if (server.closed) return;
    // Only what is true: without delivery (SHELL_SESSIONS_DELIVERY=off) the session is traced, not tracked.
    const what =
      this.#session.journal !== undefined ? "session tracking on" : "session traced, not tracked (delivery off)";
    const line = `${what} · session ${this.#session.id} · trace ${this.traceId}`;
    output.write(server.terminal ? `\r\x1b[K${line}\n` : `${line}\n`);
    server.displayPrompt?.(true);
  }

  #guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      const message = error instanceof Error ? `: ${error.message.slice(0, 200)}` : "";
      this.#deps.diag.error(`shell session ${what} failed (${errorType(error)})${message}`);
    }
  }
}

/**
 * The trace of whatever launched this process, from `TRACEPARENT` and
 * `TRACESTATE` in the environment (as CI runners and `otel-cli` pass it on),
 * as a link: the session stays its own trace, and a backend can still go from
 * the job that opened the shell to the session.
 */
function launcherLinks(env: NodeJS.ProcessEnv = process.env): Link[] {
  const carrier = { traceparent: env.TRACEPARENT, tracestate: env.TRACESTATE };
  const launcher = trace.getSpanContext(
    new W3CTraceContextPropagator().extract(ROOT_CONTEXT, carrier, defaultTextMapGetter),
  );
  return launcher !== undefined && isSpanContextValid(launcher) ? [{ context: launcher }] : [];
}

function shellAttributes(shell: ResolvedShell): Attributes {
  const attributes: Attributes = {
    [ATTR_SHELL_COMPONENT_NAME]: shell.component,
    [ATTR_SHELL_TYPE]: shell.shellType,
  };
  if (shell.version !== undefined) attributes[ATTR_SHELL_COMPONENT_VERSION] = shell.version;
  if (shell.adapters.length > 0) attributes[ATTR_SHELL_ADAPTERS] = [...shell.adapters];
  return attributes;
}
