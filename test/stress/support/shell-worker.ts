/**
 * A process full of admin shells, for the stress runs and the benchmarks.
 *
 * It opens `node:repl` REPLServers over in-memory streams, each tracked by
 * the real instrumentation as its own `shell.session` span, and delivered by
 * the real MCP exporter (one per process, as in any program with several
 * shells) to the tracker the environment names (`SESSION_BUDDY_URL` or
 * `SESSION_BUDDY_COMMAND`). The package is loaded by its name, so what runs
 * is the build a user installs.
 *
 * Acknowledgement is observed, not inferred: the exporter traces every
 * tracker call as a child span of the session span, so a `tools/call
 * track_session_start` span that ends without an error is the tracker's
 * answer to that session's start, wherever it was sent from (the live queue
 * or a later pass over the spool). A batch (`tools/call track_session_events`)
 * is linked to the span of each session it carried instead, each link naming
 * the event; its span ending without an error is the answer to all of them
 * (an event the tracker refused inside an answered batch would count too: our
 * exporter sends none it would refuse, and the runs check the store itself).
 *
 * Driven by its parent over IPC (see WorkerCommand / WorkerMessage).
 */
import { type REPLServer, start as startRepl } from "node:repl";
import { PassThrough } from "node:stream";
import { SpanStatusCode } from "@opentelemetry/api";
import { hrTimeToMilliseconds } from "@opentelemetry/core";
import { type CollectionResult, MetricReader } from "@opentelemetry/sdk-metrics";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace";
import type * as Api from "../../../src/index.ts";
import {
  ATTR_SESSION_ID,
  ATTR_SHELL_EMISSION_OUTCOME,
  ATTR_SHELL_EVENT_TYPE,
  METRIC_SHELL_EMISSIONS,
  SPAN_NAME_SESSION,
} from "../../../src/semconv.ts";
import {
  BATCH_CALL_SPAN,
  END_CALL_SPAN,
  type SessionTrace,
  START_CALL_SPAN,
  type WorkerCommand,
  type WorkerConfig,
  type WorkerMessage,
} from "./protocol.ts";

const PACKAGE = "otel-shell-sessions";

function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Records session spans and the tracker's answers to their events. */
class AckRecorder implements SpanProcessor {
  readonly sessions = new Map<string, SessionTrace>();
  failedCalls = 0;
  #waiters = new Set<() => void>();

  onStart(span: Span): void {
    if (span.name !== SPAN_NAME_SESSION) return;
    const { traceId, spanId } = span.spanContext();
    const local = span.attributes[ATTR_SESSION_ID];
    this.sessions.set(spanId, {
      localSessionId: typeof local === "string" ? local : "",
      traceId,
      spanId,
      spanStart: hrTimeToMilliseconds(span.startTime),
      spanEnd: null,
      startAck: null,
      endAck: null,
      startAnswers: 0,
      endAnswers: 0,
    });
  }

  onEnd(span: ReadableSpan): void {
    if (span.name === SPAN_NAME_SESSION) {
      const trace = this.sessions.get(span.spanContext().spanId);
      if (trace) trace.spanEnd = hrTimeToMilliseconds(span.endTime);
      this.#wake();
      return;
    }
    if (span.name !== START_CALL_SPAN && span.name !== END_CALL_SPAN && span.name !== BATCH_CALL_SPAN) return;
    if (span.status.code === SpanStatusCode.ERROR) {
      this.failedCalls++;
      return;
    }
    // The span ends once the answer has been read: that moment is the acknowledgement.
    const at = wallNow();
    if (span.name === BATCH_CALL_SPAN) {
      for (const link of span.links) {
        const start = link.attributes?.[ATTR_SHELL_EVENT_TYPE] === "session_start";
        this.#acknowledged(link.context.spanId, start, at);
      }
    } else {
      this.#acknowledged(span.parentSpanContext?.spanId ?? "", span.name === START_CALL_SPAN, at);
    }
    this.#wake();
  }

  #acknowledged(sessionSpanId: string, start: boolean, at: number): void {
    const trace = this.sessions.get(sessionSpanId);
    if (!trace) return;
    if (start) {
      trace.startAnswers++;
      trace.startAck ??= at;
    } else {
      trace.endAnswers++;
      trace.endAck ??= at;
    }
  }

  /** Resolves when `done()` holds, or false after `timeoutMs`. */
  until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!done()) return;
        finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (value: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(value);
      };
      this.#waiters.add(check);
    });
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

/** A metric reader that only answers `collect()`: the worker reads the exporter's counters itself. */
class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

function emissionsOf(collected: CollectionResult): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const scope of collected.resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== METRIC_SHELL_EMISSIONS) continue;
      for (const point of metric.dataPoints) {
        const key = `${String(point.attributes[ATTR_SHELL_EVENT_TYPE])}:${String(point.attributes[ATTR_SHELL_EMISSION_OUTCOME])}`;
        counts[key] = (counts[key] ?? 0) + (point.value as number);
      }
    }
  }
  return counts;
}

interface OpenShell {
  server: REPLServer;
  input: PassThrough;
  handle: Api.ShellSessionHandle;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const config = JSON.parse(process.env.STRESS_WORKER_CONFIG ?? "{}") as WorkerConfig;
  const send = (message: WorkerMessage) => process.send?.(message);
  // By name, through the package's exports: the build a user installs, not these sources.
  const api = (await import(PACKAGE)) as typeof Api;
  const recorder = new AckRecorder();
  const reader = new PullReader();
  const telemetry = await api.startShellTelemetry({
    component: config.component,
    shellType: "StressShell",
    banner: false,
    contextName: false,
    spanProcessors: [recorder],
    metricReaders: [reader],
  });
  const open: OpenShell[] = [];

  const openOne = (): OpenShell => {
    const input = new PassThrough();
    const output = new PassThrough();
    output.resume();
    const server = startRepl({ input, output, prompt: "stress> ", terminal: false });
    const handle = api.trackShell(server, { component: config.component, shellType: "StressShell" });
    const shell = { server, input, handle };
    open.push(shell);
    return shell;
  };
  const closeOne = (shell: OpenShell): Promise<void> =>
    new Promise((resolve) => {
      shell.server.once("exit", () => resolve());
      // End of input: what Ctrl-D or a closed pipe does to a real shell.
      shell.input.end();
    });
  const trace = (shell: OpenShell) => recorder.sessions.get(shell.handle.spanId ?? "");

  let finishing = false;
  // A parent that died leaves nobody to drive or read this worker.
  process.on("disconnect", () => {
    if (!finishing) process.exit(1);
  });
  process.on("message", (command: WorkerCommand) => {
    void (async () => {
      switch (command.type) {
        case "open": {
          const opened: OpenShell[] = [];
          for (let i = 0; i < command.count; i++) {
            opened.push(openOne());
            if (command.spreadMs > 0) await sleep(command.spreadMs / command.count);
          }
          await Promise.all(opened.map((s) => s.handle.ready));
          send({ type: "opened", open: open.length });
          return;
        }
        case "close": {
          const closing = open.splice(0, command.count);
          const done: Promise<void>[] = [];
          for (const shell of closing) {
            done.push(closeOne(shell));
            if (command.spreadMs > 0) await sleep(command.spreadMs / closing.length);
          }
          await Promise.all(done);
          send({ type: "closed", open: open.length });
          return;
        }
        case "sequence": {
          for (let i = 0; i < command.count; i++) {
            const shell = openOne();
            await shell.handle.ready;
            await recorder.until(() => trace(shell)?.startAck != null, command.timeoutMs);
            open.splice(open.indexOf(shell), 1);
            await closeOne(shell);
            await recorder.until(() => trace(shell)?.endAck != null, command.timeoutMs);
          }
          send({ type: "sequenced", done: command.count });
          return;
        }
        case "finish": {
          finishing = true;
          for (const shell of open.splice(0)) await closeOne(shell);
          const all = () => [...recorder.sessions.values()];
          const settled = await recorder.until(
            () => all().every((s) => s.startAck !== null && s.endAck !== null),
            command.timeoutMs,
          );
          // The exporter counts an outcome a few promise turns after the answer arrives: let those run first.
          await new Promise<void>((resolve) => setImmediate(resolve));
          const emissions = emissionsOf(await reader.collect());
          // Whatever is still unacknowledged goes to this worker's spool here.
          await telemetry.shutdown();
          send({
            type: "report",
            report: {
              index: config.index,
              pid: process.pid,
              sessions: all(),
              emissions,
              failedCalls: recorder.failedCalls,
              settled,
            },
          });
          process.disconnect?.();
          return;
        }
      }
    })().catch((error: unknown) => {
      send({ type: "failed", error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    });
  });
  send({ type: "ready", pid: process.pid });
}

await main();
