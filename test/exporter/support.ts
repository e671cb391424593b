/**
 * Shared pieces of the exporter tests: real tracer providers with the real
 * session span processor, session spans shaped like the instrumentation's,
 * temporary state dirs, polling with a deadline, the minimal Session-Buddy
 * server and the spool's stats.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Attributes, Context, Span } from "@opentelemetry/api";
import { hrTime } from "@opentelemetry/core";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import type { SessionRecord } from "../../src/contract/index.ts";
import { type CreateProcessorOptions, createLogger, createSessionSpanProcessor } from "../../src/exporter/index.ts";
import type { SessionSpanProcessor } from "../../src/exporter/processor.ts";
import { Spool, type SpoolStats } from "../../src/exporter/spool.ts";
import * as semconv from "../../src/semconv.ts";
import { openStore } from "../../src/store/index.ts";
import { type MinimalHttpServer, type MinimalOptions, startMinimalHttp } from "../helpers/session-buddy-minimal.ts";
import { waitFor } from "../helpers/wait.ts";

export function tempDir(t: { after(fn: () => void): void }, prefix = "exporter-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // Retried: a drain helper left by a shell of the test may still be writing here (after hooks run in
  // registration order, so this one runs before the test's processes are stopped). A throw here would
  // skip the later hooks and leave the test's tracker running.
  t.after(() => rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 }));
  return dir;
}

export { waitFor };

export interface Harness {
  provider: TracerProvider;
  processor: SessionSpanProcessor;
  spans: InMemorySpanExporter;
  warnings: string[];
  logs: string[];
}

/** A tracer provider with the session processor (from `env`) and an in-memory exporter. */
export function harness(
  t: { after(fn: () => Promise<void> | void): void },
  env: NodeJS.ProcessEnv,
  extra: Omit<CreateProcessorOptions, "env" | "log"> = {},
): Harness {
  const logs: string[] = [];
  const warnings: string[] = [];
  const log = createLogger("debug", (line) => {
    logs.push(line);
    if (/: (warn|error): /.test(line)) warnings.push(line);
  });
  let provider: TracerProvider | undefined;
  // The MCP client spans go to this test's provider (created below, hence the indirection).
  const tracerProvider = {
    getTracer: (name: string, version?: string) => (provider as TracerProvider).getTracer(name, version),
  };
  const processor = createSessionSpanProcessor({ env, log, tracerProvider, ...extra });
  if (!processor) throw new Error("delivery is off in this environment");
  const spans = new InMemorySpanExporter();
  provider = new TracerProvider({ spanProcessors: [processor, new SimpleSpanProcessor({ exporter: spans })] });
  t.after(() => provider.shutdown());
  return { provider, processor, spans, warnings, logs };
}

/** Environment for delivery in tests: a private state dir, short timings, no inherited tracker settings. */
export function deliveryEnv(stateDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    SHELL_SESSIONS_STATE_DIR: stateDir,
    SHELL_SESSIONS_CALL_TIMEOUT_MS: "3000",
    SHELL_SESSIONS_BREAKER_RESET_MS: "500",
    SHELL_SESSIONS_SPOOL_RETRY_MS: "200",
    SHELL_SESSIONS_RETRY_MAX_ELAPSED_MS: "2000",
    // These tests follow events through the in-process delivery: it gets time to finish once the last session ends.
    SHELL_SESSIONS_EXIT_GRACE_MS: "3000",
    ...extra,
  };
}

export interface SessionOptions {
  component?: string;
  shellType?: string;
  attributes?: Attributes;
}

/** Starts a session span as the instrumentation does (attributes at start). */
export function startSession(provider: TracerProvider, options: SessionOptions = {}, parent?: Context): Span {
  const tracer = provider.getTracer("otel-shell-sessions");
  return tracer.startSpan(
    semconv.SPAN_NAME_SESSION,
    {
      attributes: {
        [semconv.ATTR_SESSION_ID]: randomUUID(),
        [semconv.ATTR_PROCESS_INTERACTIVE]: true,
        [semconv.ATTR_SHELL_COMPONENT_NAME]: options.component ?? "mahavishnu",
        [semconv.ATTR_SHELL_TYPE]: options.shellType ?? "MahavishnuShell",
        [semconv.ATTR_SHELL_COMPONENT_VERSION]: "1.2.3",
        [semconv.ATTR_SHELL_ADAPTERS]: ["redis", "postgres"],
        ...options.attributes,
      },
    },
    parent,
  );
}

/** Ends a session span as the instrumentation does (attributes at end). */
export function endSession(span: Span, reason = "exit_command", evals = 3, errors = 1): void {
  const [s0, n0] = (span as unknown as { startTime: [number, number] }).startTime;
  const [s1, n1] = hrTime();
  const seconds = s1 - s0 + (n1 - n0) / 1e9;
  span.setAttributes({
    [semconv.ATTR_SHELL_EXIT_REASON]: reason,
    [semconv.ATTR_SHELL_EVAL_COUNT]: evals,
    [semconv.ATTR_SHELL_EVAL_ERROR_COUNT]: errors,
    [semconv.ATTR_SHELL_SESSION_DURATION]: seconds,
  });
  span.end();
}

// ---- metrics read back through a real MeterProvider ----

class CollectingReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export interface MetricsProbe {
  meterProvider: MeterProvider;
  /** Sum (counters, gauges: last value) of the points of `name` whose attributes include `match`. */
  value(name: string, match?: Attributes): Promise<number>;
  /** Count of recorded values of histogram `name` whose attributes include `match`. */
  histogramCount(name: string, match?: Attributes): Promise<number>;
  /** Emissions (shell.emissions) with `outcome`, of one event type or of both. */
  emissions(outcome: string, eventType?: "session_start" | "session_end"): Promise<number>;
}

export function metricsProbe(t: { after(fn: () => Promise<void> | void): void }): MetricsProbe {
  const reader = new CollectingReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  t.after(() => meterProvider.shutdown());
  const points = async (name: string, match: Attributes) => {
    const { resourceMetrics } = await reader.collect();
    const found = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).filter((m) => m.descriptor.name === name);
    return found.flatMap((m) =>
      (m.dataPoints as { attributes: Attributes; value: unknown }[]).filter((p) =>
        Object.entries(match).every(([k, v]) => p.attributes[k] === v),
      ),
    );
  };
  const value = async (name: string, match: Attributes = {}) =>
    (await points(name, match)).reduce((sum, p) => sum + (typeof p.value === "number" ? p.value : 0), 0);
  return {
    meterProvider,
    value,
    async histogramCount(name, match = {}) {
      return (await points(name, match)).reduce((sum, p) => sum + ((p.value as { count?: number }).count ?? 0), 0);
    },
    async emissions(outcome, eventType) {
      return value(semconv.METRIC_SHELL_EMISSIONS, {
        [semconv.ATTR_SHELL_EMISSION_OUTCOME]: outcome,
        ...(eventType !== undefined ? { [semconv.ATTR_SHELL_EVENT_TYPE]: eventType } : {}),
      });
    },
  };
}

/** A shared secret the tracker accepts (at least 32 characters). */
export function randomSecret(): string {
  return randomBytes(32).toString("base64url");
}

// ---- a server with only the real Session-Buddy's three tools, and the spool ----

export interface MinimalTracker {
  /** The test's state dir. */
  dir: string;
  /** The file the server appends each call to (see readRecords). */
  record: string;
  server: MinimalHttpServer;
}

/** A fresh state dir and the minimal server over HTTP recording its calls there, stopped after `t`. */
export async function minimalTracker(
  t: { after(fn: () => Promise<void> | void): void },
  options: Omit<MinimalOptions, "record"> = {},
): Promise<MinimalTracker> {
  const dir = tempDir(t);
  const record = join(dir, "calls.jsonl");
  const server = await startMinimalHttp({ record, ...options });
  t.after(() => server.stop());
  return { dir, record, server };
}

/** The stats of the spool in state dir `dir`, read through a connection of its own; undefined while there is none. */
export function spoolStats(dir: string): SpoolStats | undefined {
  const path = join(dir, "spool.db");
  if (!Spool.exists(path)) return undefined;
  const spool = Spool.open(path, { limits: { maxEvents: 1e6, maxBytes: 1e9 } });
  try {
    return spool.stats();
  } finally {
    spool.close();
  }
}

// ---- the tracker's store, read back ----

export async function storedSessions(storeSpec: string): Promise<{ sessions: SessionRecord[]; events: number }> {
  const store = await openStore(storeSpec);
  try {
    const sessions: SessionRecord[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await store.listSessions({ limit: 500, ...(cursor !== undefined ? { cursor } : {}) });
      sessions.push(...page.sessions);
      if (page.nextCursor === null) break;
      cursor = page.nextCursor;
    }
    return { sessions, events: await store.countEvents() };
  } finally {
    await store.close();
  }
}

// ---- real shells: programs run with --import otel-shell-sessions/register ----

export const SHELL_HOST = fileURLToPath(new URL("./fixtures/shell-host.mjs", import.meta.url));

/** Environment for a shell program: nothing inherited from the developer's settings, telemetry only to the tracker. */
export function shellEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OTEL_|SESSION_BUDDY_|SHELL_SESSIONS_)/.test(k) || k === "NODE_OPTIONS" || k === "NODE_TEST_CONTEXT")
      continue;
    env[k] = v;
  }
  return {
    ...env,
    OTEL_TRACES_EXPORTER: "none",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    SHELL_SESSIONS_COMPONENT: "fixture",
    ...extra,
  };
}

/**
 * A shell program's environment for delivery to `tracker`, with short
 * timings so that outages resolve within a test (the logic is the defaults').
 */
export function trackedShellEnv(
  tracker: { url: string; secret: string | undefined },
  stateDir: string,
  extra: NodeJS.ProcessEnv = {},
): NodeJS.ProcessEnv {
  return shellEnv({
    SHELL_SESSIONS_STATE_DIR: stateDir,
    SESSION_BUDDY_URL: tracker.url,
    SESSION_BUDDY_SECRET: tracker.secret,
    SHELL_SESSIONS_CALL_TIMEOUT_MS: "2000",
    SHELL_SESSIONS_BREAKER_RESET_MS: "500",
    SHELL_SESSIONS_SPOOL_RETRY_MS: "200",
    SHELL_SESSIONS_RETRY_MAX_ELAPSED_MS: "1000",
    SHELL_SESSIONS_HELPER_TIMEOUT_MS: "120000",
    ...extra,
  });
}

export interface ShellProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function runShellHost(env: NodeJS.ProcessEnv, args: string[] = []): ShellProcess {
  const child = spawn(process.execPath, ["--import", "otel-shell-sessions/register", SHELL_HOST, ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d) => {
    out += String(d);
  });
  child.stderr?.on("data", (d) => {
    err += String(d);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** An attribute of a live or ended SDK span. */
export function attribute(span: Span, key: string): unknown {
  return (span as unknown as { attributes: Attributes }).attributes[key];
}

/** The tracker's session id on a session span, once delivery has set it (the tracker acknowledged the start). */
export function trackerSessionId(span: Span, what = "the tracker id on the span"): Promise<string> {
  return waitFor(what, () => {
    const id = attribute(span, semconv.ATTR_SHELL_TRACKER_SESSION_ID);
    return typeof id === "string" && id !== "" ? id : undefined;
  });
}
