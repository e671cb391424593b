/**
 * ShellSessionInstrumentation in-process: real REPLServers on in-memory
 * streams, spans read from an InMemorySpanExporter, metrics from a reader.
 * (The terminal-only ways out, Ctrl-C and Ctrl-D, and the process-level ones
 * are driven through a real PTY in exit-paths.test.ts.)
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import * as replEsm from "node:repl";
import { PassThrough } from "node:stream";
import { after, before, beforeEach, describe, test } from "node:test";
import { context, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { ContractError } from "../../src/contract/errors.ts";
import { installCapture } from "../../src/instrumentation/capture.ts";
import { ShellSessionInstrumentation } from "../../src/instrumentation/instrumentation.ts";
import { registry } from "../../src/instrumentation/registry.ts";
import { OptionError } from "../../src/option-error.ts";
import * as semconv from "../../src/semconv.ts";
import { trackShell } from "../../src/telemetry/api.ts";
import { waitFor } from "../helpers/wait.ts";

// These tests look at spans in this process; none is delivered, so none is written ahead to a journal either.
process.env.SHELL_SESSIONS_DELIVERY = "off";

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

// @types/node marks the constructor private, though Node documents `new REPLServer()`, which is one of the forms under test.
const REPLServer = replEsm.REPLServer as unknown as new (options: replEsm.ReplOptions) => replEsm.REPLServer;

const exporter = new InMemorySpanExporter();
const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
const reader = new TestReader();
const meterProvider = new MeterProvider({ readers: [reader] });
const contextManager = new AsyncLocalStorageContextManager();
let instrumentation: ShellSessionInstrumentation;

interface TestShell {
  server: replEsm.REPLServer;
  input: PassThrough;
  output: () => string;
  send(line: string): void;
}

function openShell(make: (options: replEsm.ReplOptions) => replEsm.REPLServer = (o) => new REPLServer(o)) {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = "";
  output.on("data", (chunk: Buffer) => {
    text += chunk.toString("utf8");
  });
  const server = make({ input, output, terminal: false, prompt: "t> ", useColors: false });
  return {
    server,
    input,
    output: () => text,
    send(line: string) {
      input.write(`${line}\n`);
    },
  } satisfies TestShell;
}

function sessionSpans(): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.name === semconv.SPAN_NAME_SESSION);
}

function evalSpans(): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.name === semconv.SPAN_NAME_EVAL);
}

/** The recorded text of each input, in order (undefined where none was recorded). */
function recordedInputs(): unknown[] {
  return evalSpans().map((s) => s.attributes[semconv.ATTR_SHELL_EVAL_INPUT]);
}

function endedSessionSpan(sessionId: string): Promise<ReadableSpan> {
  return waitFor(`the session span of ${sessionId}`, () =>
    sessionSpans().find((s) => s.attributes[semconv.ATTR_SESSION_ID] === sessionId),
  );
}

/** The session id of a shell, from the `session` object the instrumentation puts in its context. */
async function sessionIdOf(shell: TestShell): Promise<string> {
  return waitFor("the session object in the shell", () => {
    const info = (shell.server.context as { session?: { id: string } }).session;
    return info?.id;
  });
}

async function evaluated(shell: TestShell, line: string, expected: RegExp): Promise<void> {
  const from = shell.output().length;
  shell.send(line);
  await waitFor(`output ${expected}`, () => (expected.test(shell.output().slice(from)) ? true : undefined));
}

before(() => {
  context.setGlobalContextManager(contextManager.enable());
  instrumentation = new ShellSessionInstrumentation({ enabled: false });
  instrumentation.setTracerProvider(tracerProvider);
  instrumentation.setMeterProvider(meterProvider);
  instrumentation.enable();
});

after(async () => {
  instrumentation.disable();
  await tracerProvider.shutdown();
  await meterProvider.shutdown();
  context.disable();
});

beforeEach(() => {
  exporter.reset();
  instrumentation.setConfig({});
});

describe("one span per shell", () => {
  test("new REPLServer(): a shell.session span with the session attributes, ended by .exit", async () => {
    const shell = openShell();
    const id = await sessionIdOf(shell);
    await evaluated(shell, "inventory = 40 + 2", /42/);
    shell.send(".exit");
    const span = await endedSessionSpan(id);
    assert.equal(span.kind, SpanKind.INTERNAL);
    assert.equal(span.instrumentationScope.name, semconv.SCOPE_NAME);
    assert.equal(span.parentSpanContext, undefined, "a session is the root of its own trace");
    const a = span.attributes;
    assert.match(
      String(a[semconv.ATTR_SESSION_ID]),
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    assert.equal(typeof a[semconv.ATTR_PROCESS_INTERACTIVE], "boolean");
    // Host, process and owner are the resource's facts, not copied onto the span.
    for (const key of ["host.name", "process.pid", "process.runtime.name", "process.runtime.version", "user.name"]) {
      assert.equal(a[key], undefined, key);
    }
    assert.equal(a[semconv.ATTR_SHELL_TYPE], "REPLServer");
    assert.equal(a[semconv.ATTR_SHELL_EXIT_REASON], "exit_command");
    assert.equal(a[semconv.ATTR_SHELL_EVAL_COUNT], 1);
    assert.equal(a[semconv.ATTR_SHELL_EVAL_ERROR_COUNT], 0);
    assert.equal(typeof a[semconv.ATTR_SHELL_SESSION_DURATION], "number");
    assert.ok((a[semconv.ATTR_SHELL_SESSION_DURATION] as number) >= 0);
    assert.equal(sessionSpans().length, 1);
  });

  test("repl.start() through require('repl'), require('node:repl') and the ES module are all caught", async () => {
    const require = createRequire(import.meta.url);
    const makers: Array<(o: replEsm.ReplOptions) => replEsm.REPLServer> = [
      // biome-ignore lint/style/useNodejsImportProtocol: the unprefixed name is one of the forms under test
      (o) => (require("repl") as typeof replEsm).start(o),
      (o) => (require("node:repl") as typeof replEsm).start(o),
      (o) => replEsm.start(o),
      // biome-ignore lint/style/useNodejsImportProtocol: the unprefixed name is one of the forms under test
      (o) => new ((require("repl") as typeof replEsm).REPLServer as unknown as typeof REPLServer)(o),
    ];
    const ids: string[] = [];
    for (const make of makers) {
      const shell = openShell(make);
      ids.push(await sessionIdOf(shell));
      shell.server.close();
    }
    assert.equal(new Set(ids).size, makers.length, "each shell has its own session id");
    for (const id of ids)
      assert.equal((await endedSessionSpan(id)).attributes[semconv.ATTR_SHELL_EXIT_REASON], "closed");
    assert.equal(sessionSpans().length, makers.length);
  });

  test("end of a piped input ends the session with eof", async () => {
    const shell = openShell();
    const id = await sessionIdOf(shell);
    shell.input.end();
    assert.equal((await endedSessionSpan(id)).attributes[semconv.ATTR_SHELL_EXIT_REASON], "eof");
  });

  test("a subclass of REPLServer is caught and named by its class", async () => {
    class OpsShell extends REPLServer {}
    const shell = openShell((o) => new OpsShell(o));
    const id = await sessionIdOf(shell);
    shell.send(".exit");
    assert.equal((await endedSessionSpan(id)).attributes[semconv.ATTR_SHELL_TYPE], "OpsShell");
  });

  test("inputs and failed inputs are counted; an incomplete line is not an input", async () => {
    const shell = openShell();
    const id = await sessionIdOf(shell);
    await evaluated(shell, "1 + 1", /2/);
    await evaluated(shell, "notDefinedAnywhere", /ReferenceError/);
    shell.send("[1,");
    await evaluated(shell, "2].length", /2/);
    shell.send("");
    shell.send(".exit");
    const span = await endedSessionSpan(id);
    assert.equal(span.attributes[semconv.ATTR_SHELL_EVAL_COUNT], 3);
    assert.equal(span.attributes[semconv.ATTR_SHELL_EVAL_ERROR_COUNT], 1);
  });
});

describe("what the shell shows", () => {
  test("a banner line with the session and trace ids, and a `session` object, kept across .clear", async () => {
    const shell = openShell();
    const id = await sessionIdOf(shell);
    const banner = await waitFor(
      "the banner",
      // Delivery is off in this file: the banner says the session is traced, not tracked.
      () =>
        shell.output().match(/session traced, not tracked \(delivery off\) · session (\S+) · trace ([0-9a-f]{32})/) ??
        undefined,
    );
    assert.equal(banner[1], id);
    await evaluated(shell, "session.traceId", new RegExp(banner[2] as string));
    await evaluated(shell, ".clear", /Clearing context/);
    await evaluated(shell, "session.id", new RegExp(id));
    shell.send(".exit");
    const span = await endedSessionSpan(id);
    assert.equal(span.spanContext().traceId, banner[2], "the banner shows the span's trace id");
  });

  test("banner: false and contextName: false keep the shell untouched; an existing `session` is left alone", async () => {
    instrumentation.setConfig({ banner: false, contextName: false });
    const quiet = openShell();
    const handle = trackShell(quiet.server);
    await handle.ready;
    await evaluated(quiet, "typeof session", /'undefined'/);
    assert.doesNotMatch(quiet.output(), /session (tracking on|traced)/);
    quiet.server.close();
    await endedSessionSpan(handle.sessionId);

    instrumentation.setConfig({});
    const busy = openShell((o) => {
      const server = new REPLServer(o);
      server.context.session = "the host's own";
      return server;
    });
    const busyHandle = trackShell(busy.server);
    await busyHandle.ready;
    await evaluated(busy, "session", /the host's own/);
    busy.server.close();
    await endedSessionSpan(busyHandle.sessionId);
  });
});

describe("per-input spans", () => {
  const SECRET_INPUT = "const unusualMarker = 'zebra-quartz-7781'";

  test("are off by default: one span per session, none per input", async () => {
    const shell = openShell();
    const id = await sessionIdOf(shell);
    await evaluated(shell, "1 + 1", /2/);
    shell.send(".exit");
    await endedSessionSpan(id);
    assert.deepEqual(
      exporter.getFinishedSpans().map((s) => s.name),
      [semconv.SPAN_NAME_SESSION],
    );
  });

  test("when on, each input is a child span; its text is not recorded unless captured", async () => {
    instrumentation.setConfig({ evalSpans: true });
    const shell = openShell();
    const id = await sessionIdOf(shell);
    await evaluated(shell, SECRET_INPUT, /undefined/);
    await evaluated(shell, "missingThing.field", /ReferenceError/);
    shell.send(".exit");
    const session = await endedSessionSpan(id);
    const evals = evalSpans();
    assert.equal(evals.length, 2);
    for (const span of evals) {
      assert.equal(span.parentSpanContext?.spanId, session.spanContext().spanId);
      assert.equal(span.spanContext().traceId, session.spanContext().traceId);
      assert.equal(span.attributes[semconv.ATTR_SHELL_EVAL_INPUT], undefined);
    }
    const failed = evals.find((s) => s.status.code === SpanStatusCode.ERROR);
    assert.equal(failed?.attributes[semconv.ATTR_ERROR_TYPE], "ReferenceError");
    assert.equal(failed?.status.message, undefined, "an error message can quote the input: not recorded");
    const everything = JSON.stringify(
      exporter.getFinishedSpans().map((s) => [s.name, s.attributes, s.status, s.events]),
    );
    assert.doesNotMatch(everything, /zebra-quartz|unusualMarker|missingThing/);
  });

  test("captured input passes through the default redaction", async () => {
    instrumentation.setConfig({ evalSpans: true, captureInput: true });
    const shell = openShell();
    const id = await sessionIdOf(shell);
    await evaluated(shell, "const creds = { user: 'ops', password: 'hunter2-hunter2' }", /undefined/);
    await evaluated(shell, "inventoryCount = 7", /7/);
    shell.send(".exit");
    await endedSessionSpan(id);
    assert.deepEqual(recordedInputs(), ["const creds = { user: 'ops', password: '[REDACTED]' }", "inventoryCount = 7"]);
  });

  test("a custom redactor decides, and one returning undefined records nothing", async () => {
    instrumentation.setConfig({
      evalSpans: true,
      captureInput: true,
      redactInput: (input) => (input.includes("drop") ? undefined : input.toUpperCase()),
    });
    const shell = openShell();
    const id = await sessionIdOf(shell);
    await evaluated(shell, "'keep'", /keep/);
    await evaluated(shell, "'drop'", /drop/);
    shell.send(".exit");
    await endedSessionSpan(id);
    assert.deepEqual(recordedInputs(), ["'KEEP'", undefined]);
  });
});

describe("metrics", () => {
  async function collect() {
    const { resourceMetrics } = await reader.collect();
    const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
    return (name: string) => all.find((m) => m.descriptor.name === name)?.dataPoints ?? [];
  }

  const sum = (points: DataPoint<unknown>[], filter: (attrs: Record<string, unknown>) => boolean = () => true) =>
    points.filter((p) => filter(p.attributes)).reduce((n, p) => n + (p.value as number), 0);

  test("active sessions go up and down; duration, started and ended are counted once per session", async () => {
    const byComponent = (attrs: Record<string, unknown>) => attrs[semconv.ATTR_SHELL_COMPONENT_NAME] === "metrics-test";
    const shell = openShell();
    const handle = trackShell(shell.server, { component: "metrics-test", shellType: "MetricsShell" });
    await handle.ready;
    let m = await collect();
    assert.equal(sum(m(semconv.METRIC_SHELL_SESSION_ACTIVE), byComponent), 1);
    assert.equal(sum(m(semconv.METRIC_SHELL_SESSION_STARTED), byComponent), 1);
    shell.send(".exit");
    await endedSessionSpan(handle.sessionId);
    m = await collect();
    assert.equal(sum(m(semconv.METRIC_SHELL_SESSION_ACTIVE), byComponent), 0);
    const ended = m(semconv.METRIC_SHELL_SESSION_ENDED).filter((p) => byComponent(p.attributes));
    assert.deepEqual(
      ended.map((p) => [p.attributes[semconv.ATTR_SHELL_EXIT_REASON], p.attributes[semconv.ATTR_SHELL_TYPE], p.value]),
      [["exit_command", "MetricsShell", 1]],
    );
    const durations = m(semconv.METRIC_SHELL_SESSION_DURATION).filter((p) => byComponent(p.attributes));
    assert.equal(durations.length, 1);
    assert.equal((durations[0]?.value as Histogram | undefined)?.count, 1);
  });
});

describe("trackShell", () => {
  test("describes the shell with the component's own name, type, version and adapters", async () => {
    const shell = openShell();
    const handle = trackShell(shell.server, {
      component: "mahavishnu",
      shellType: "MahavishnuShell",
      version: "2.3.0",
      adapters: ["redis", "postgres"],
    });
    assert.equal(trackShell(shell.server).sessionId, handle.sessionId, "the same shell is the same session");
    await handle.ready;
    assert.match(handle.traceId ?? "", /^[0-9a-f]{32}$/);
    assert.equal(handle.ended, false);
    shell.server.close();
    const span = await endedSessionSpan(handle.sessionId);
    assert.equal(handle.ended, true);
    assert.equal(span.spanContext().traceId, handle.traceId);
    assert.equal(span.attributes[semconv.ATTR_SHELL_COMPONENT_NAME], "mahavishnu");
    assert.equal(span.attributes[semconv.ATTR_SHELL_TYPE], "MahavishnuShell");
    assert.equal(span.attributes[semconv.ATTR_SHELL_COMPONENT_VERSION], "2.3.0");
    assert.deepEqual(span.attributes[semconv.ATTR_SHELL_ADAPTERS], ["redis", "postgres"]);
  });

  test("handle.end(reason) ends the span once; later exits of the shell are not recorded again", async () => {
    const shell = openShell();
    const handle = trackShell(shell.server);
    await handle.ready;
    handle.end("sigterm");
    handle.end("closed");
    shell.send(".exit");
    const span = await endedSessionSpan(handle.sessionId);
    assert.equal(span.attributes[semconv.ATTR_SHELL_EXIT_REASON], "sigterm");
    await waitFor("the shell to close", () => (shell.server as unknown as { closed: boolean }).closed || undefined);
    assert.equal(sessionSpans().filter((s) => s.attributes[semconv.ATTR_SESSION_ID] === handle.sessionId).length, 1);
  });

  test("bad arguments are refused with an error naming the field, and change nothing", async () => {
    const shell = openShell();
    assert.throws(
      () => trackShell(shell.server, { component: "has spaces" }),
      (e: unknown) => e instanceof ContractError && e.code === "invalid_argument" && e.issues[0]?.field === "component",
    );
    assert.throws(
      () => trackShell(shell.server, { component: "has spaces" }),
      (e: unknown) => e instanceof OptionError && e.name === "OptionError" && e.source === "component",
      "the one error for a bad option, naming it",
    );
    assert.throws(
      () => trackShell(shell.server, { adapters: "redis" } as unknown as { adapters: string[] }),
      (e: unknown) => e instanceof ContractError && /adapters/.test(e.message),
    );
    assert.throws(
      () => trackShell(shell.server, { colour: "blue" } as never),
      (e: unknown) => e instanceof ContractError && /colour/.test(e.message),
    );
    assert.throws(
      () => trackShell({} as replEsm.REPLServer),
      (e: unknown) => e instanceof ContractError && e.issues[0]?.field === "server",
    );
    const handle = trackShell(shell.server);
    assert.throws(
      () => handle.end("bored" as never),
      (e: unknown) => e instanceof ContractError && /exit reason/.test(e.message),
    );
    assert.equal(handle.ended, false);
    shell.server.close();
    const span = await endedSessionSpan(handle.sessionId);
    assert.equal(span.attributes[semconv.ATTR_SHELL_EXIT_REASON], "closed");
    assert.notEqual(span.attributes[semconv.ATTR_SHELL_COMPONENT_NAME], "has spaces");
    assert.equal(span.attributes[semconv.ATTR_SHELL_ADAPTERS], undefined);
  });
});

describe("enable, disable, and shells that predate telemetry", () => {
  test("while disabled, new shells get no span; enabled again, they do", async () => {
    instrumentation.disable();
    const untracked = openShell();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(registry().sessions.has(untracked.server), false);
    untracked.server.close();
    instrumentation.enable();
    const tracked = openShell();
    const id = await sessionIdOf(tracked);
    tracked.server.close();
    await endedSessionSpan(id);
    assert.equal(sessionSpans().length, 1);
  });

  test("a shell recorded before the instrumentation is enabled gets its span with the recorded start time", async () => {
    instrumentation.disable();
    installCapture();
    const shell = openShell();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const session = registry().sessions.get(shell.server);
    assert.ok(session, "the start-up hook records the shell");
    const enabledAt = Date.now();
    instrumentation.enable();
    const id = await sessionIdOf(shell);
    assert.equal(id, session.id);
    shell.send(".exit");
    const span = await endedSessionSpan(id);
    const startMs = span.startTime[0] * 1000 + span.startTime[1] / 1e6;
    assert.ok(Math.abs(startMs - session.startTime) < 0.001, "the span starts at the recorded time");
    assert.ok(startMs < enabledAt, "which is when the shell opened, not when telemetry came up");
  });

  test("a shell that ended before telemetry was up still gets its one span", async () => {
    instrumentation.disable();
    installCapture();
    const shell = openShell();
    shell.send(".exit");
    await waitFor("the shell to close", () => (shell.server as unknown as { closed: boolean }).closed || undefined);
    const session = registry().sessions.get(shell.server);
    assert.equal(session?.exitReason, "exit_command");
    instrumentation.enable();
    const span = await endedSessionSpan(session.id);
    assert.equal(span.attributes[semconv.ATTR_SHELL_EXIT_REASON], "exit_command");
    assert.equal(sessionSpans().length, 1);
  });
});
