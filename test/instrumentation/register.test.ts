/**
 * `node --import otel-shell-sessions/register`: the SDK it starts from the
 * standard `OTEL_*` variables (spans over OTLP to a test receiver, metrics on
 * a Prometheus endpoint), its co-existence with
 * `@opentelemetry/auto-instrumentations-node/register`, and its use from a
 * program outside this repository. Needs `npm run build` (the package's
 * entry points are in dist/).
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { freePort } from "../helpers/ports.ts";
import { spawnPty } from "../helpers/pty.ts";
import { FIXTURES, isSessionSpan, openTrackedShell, REGISTER, ROOT, shellTestbed } from "./shell-testbed.ts";

const bed = shellTestbed("shell-register-");
/** The span of whatever started the shell's process (a CI job, say), as it passes on TRACEPARENT. */
const LAUNCHER = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331" };

describe("the SDK register starts", () => {
  test("is configured from OTEL_*: the session span goes over OTLP, named for the service", async (t) => {
    const { shell, sessionId, traceId } = await openTrackedShell(
      t,
      ["--import", REGISTER, join(FIXTURES, "repl-host.cjs")],
      {
        prompt: "host> ",
        cwd: FIXTURES,
        env: bed.env({
          OTEL_SERVICE_NAME: "ops-api",
          SHELL_SESSIONS_ADAPTERS: "redis, postgres",
          TRACEPARENT: `00-${LAUNCHER.traceId}-${LAUNCHER.spanId}-01`,
        }),
      },
    );
    shell.type(".exit");
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
    const span = await bed.sessionSpan(sessionId);
    assert.equal(span.traceId, traceId);
    assert.equal(span.scope.name, "otel-shell-sessions");
    assert.equal(span.resource["service.name"], "ops-api");
    assert.equal(span.attributes["shell.component.name"], "ops-api");
    assert.deepEqual(span.attributes["shell.adapters"], ["redis", "postgres"]);
    assert.equal(span.attributes["shell.exit.reason"], "exit_command");
    assert.notEqual(span.traceId, LAUNCHER.traceId, "the session is its own trace");
    assert.deepEqual(
      span.links.map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
      [LAUNCHER],
      "TRACEPARENT in the environment is a link to the launcher",
    );
  });

  test("flushes on SIGTERM before the signal takes the process down", async (t) => {
    const { shell, sessionId } = await openTrackedShell(t, ["--import", REGISTER, join(FIXTURES, "repl-host.cjs")], {
      prompt: "host> ",
      cwd: FIXTURES,
      env: bed.env({
        SHELL_SESSIONS_COMPONENT: "billing",
        OTEL_RESOURCE_ATTRIBUTES: "service.name=billing%20api,team=payments",
        OTEL_BSP_SCHEDULE_DELAY: "60000",
      }),
    });
    shell.kill("SIGTERM");
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 15 });
    const [span] = bed.receiver.spans.filter(isSessionSpan(sessionId));
    assert.ok(span, "the span was exported before the process died");
    assert.equal(span.attributes["shell.exit.reason"], "sigterm");
    assert.equal(span.attributes["shell.component.name"], "billing");
    assert.equal(
      span.resource["service.name"],
      "billing api",
      "the environment's service.name wins over the component",
    );
  });

  test("with OTEL_METRICS_EXPORTER=prometheus, the endpoint shows the active session, then its end", async (t) => {
    const port = await freePort();
    const shell = spawnPty(["--import", REGISTER, join(FIXTURES, "repl-host.cjs")], {
      cwd: FIXTURES,
      env: bed.env({
        OTEL_METRICS_EXPORTER: "prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
        OTEL_TRACES_EXPORTER: "none",
        SHELL_SESSIONS_COMPONENT: "metrics-host",
        FIXTURE_AFTER_CLOSE: "stay",
      }),
    });
    t.after(() => shell.dispose());
    await shell.waitFor("host> ");
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const sample = (text: string, name: string) => {
      const line = text
        .split("\n")
        .find((l) => l.startsWith(`${name}{`) && l.includes('shell_component_name="metrics-host"'));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
    };
    const deadline = Date.now() + 30_000;
    let during = "";
    while (sample(during, "shell_session_active") !== 1) {
      assert.ok(Date.now() < deadline, `no active session on the endpoint:\n${during}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      during = await scrape().catch(() => "");
    }
    assert.equal(sample(during, "shell_session_duration_count"), undefined);
    shell.type(".exit");
    await shell.waitFor("[host] shell closed");
    const afterExit = await scrape();
    assert.equal(sample(afterExit, "shell_session_active"), 0);
    assert.equal(sample(afterExit, "shell_session_duration_count"), 1);
    assert.match(afterExit, /shell_session_ended_total\{[^}]*shell_exit_reason="exit_command"[^}]*\} 1/);
    shell.kill("SIGTERM");
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 15 });
  });
});

test("an app that starts its own SDK 2 s in, then opens a shell: one SDK, the app's, and a word that it was joined", async (t) => {
  const { shell, sessionId } = await openTrackedShell(t, ["--import", REGISTER, join(FIXTURES, "late-sdk-app.mjs")], {
    prompt: "late> ",
    cwd: FIXTURES,
    env: bed.env({ OTEL_LOG_LEVEL: "warn" }),
  });
  shell.type(".exit");
  assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
  const span = await bed.sessionSpan(sessionId);
  assert.equal(span.resource["service.name"], "late-app", "the app's SDK exported the session span");
  assert.doesNotMatch(shell.output, /duplicate registration|versions must match/i);
  assert.match(shell.output, /an OpenTelemetry SDK is already registered in this process; shell sessions join it/);
});

describe("with @opentelemetry/auto-instrumentations-node/register in the same process", () => {
  for (const order of ["auto first", "register first"] as const) {
    test(`${order}: one SDK, our span, and the shell's own HTTP call in the session's trace`, async (t) => {
      const auto = ["--import", "@opentelemetry/auto-instrumentations-node/register"];
      const ours = ["--import", REGISTER];
      const imports = order === "auto first" ? [...auto, ...ours] : [...ours, ...auto];
      const { shell, sessionId, traceId } = await openTrackedShell(t, [...imports, join(FIXTURES, "repl-host.cjs")], {
        prompt: "host> ",
        cwd: FIXTURES,
        env: bed.env({
          OTEL_SERVICE_NAME: "coexist",
          OTEL_LOG_LEVEL: "warn",
          OTEL_NODE_ENABLED_INSTRUMENTATIONS: "http",
          OTEL_NODE_RESOURCE_DETECTORS: "serviceinstance",
        }),
      });
      const mark = shell.mark();
      shell.type(
        `void require("node:http").get("${bed.receiver.url}/ping", (r) => r.resume().on("end", () => console.log("ping done")))`,
      );
      await shell.waitFor("ping done", { since: mark });
      shell.type(".exit");
      assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
      const [client] = await bed.receiver.waitForSpans((s) => s.traceId === traceId && s.name !== "shell.session");
      await bed.receiver.waitForSpans(isSessionSpan(sessionId));
      const inTrace = bed.receiver.spans.filter((s) => s.traceId === traceId);
      const session = bed.receiver.spans.filter(isSessionSpan(sessionId));
      assert.equal(session.length, 1, "exactly one session span");
      assert.equal(client?.parentSpanId, session[0]?.spanId, "the shell's HTTP call is a child of the session span");
      const instances = new Set(
        inTrace.filter((s) => s.traceId === traceId).map((s) => s.resource["service.instance.id"]),
      );
      assert.equal(instances.size, 1, "both spans come from one SDK");
      assert.doesNotMatch(shell.output, /duplicate registration/i);
    });
  }
});

describe("from a program outside this repository", () => {
  test("--import with the absolute path of dist/register.js, and through a node_modules link", async (t) => {
    const app = join(bed.work, "outside-app");
    mkdirSync(join(app, "node_modules"), { recursive: true });
    copyFileSync(join(FIXTURES, "repl-host.cjs"), join(app, "app.cjs"));
    symlinkSync(ROOT, join(app, "node_modules", "otel-shell-sessions"), "dir");
    for (const specifier of [REGISTER, "otel-shell-sessions/register"]) {
      const { shell, sessionId } = await openTrackedShell(t, ["--import", specifier, "app.cjs"], {
        prompt: "host> ",
        cwd: app,
        env: bed.env(),
      });
      shell.write("\x04");
      assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
      const span = await bed.sessionSpan(sessionId);
      assert.equal(span.attributes["shell.exit.reason"], "eof", specifier);
    }
  });
});
