/**
 * Every example runs as documented: the component shells and the
 * programmatic set-up as `node examples/<name>.ts`, and the `--import`
 * recipe's commands exactly as auto-instrumentation.md shows them. Spans are
 * read from an OTLP receiver.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { spawnPty } from "../helpers/pty.ts";
import { OtlpReceiver, type ReceivedSpan } from "./otlp-receiver.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BANNER = /session tracking on · session ([0-9a-f-]{36}) · trace ([0-9a-f]{32})/;
const work = mkdtempSync(join(tmpdir(), "shell-examples-"));
let receiver: OtlpReceiver;

before(async () => {
  receiver = await OtlpReceiver.start();
});
after(async () => {
  await receiver.close();
  rmSync(work, { recursive: true, force: true });
});

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    SHELL_SESSIONS_DELIVERY: "off",
    SHELL_SESSIONS_STATE_DIR: work,
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    ...receiver.env(),
    ...extra,
  };
}

async function sessionSpan(sessionId: string): Promise<ReceivedSpan> {
  const isMine = (s: ReceivedSpan) => s.name === "shell.session" && s.attributes["session.id"] === sessionId;
  const mine = (await receiver.waitFor((all) => all.some(isMine))).filter(isMine);
  assert.equal(mine.length, 1);
  return mine[0] as ReceivedSpan;
}

describe("component shells and the programmatic set-up", () => {
  test("node examples/mahavishnu-shell.ts", async (t) => {
    const shell = spawnPty(["examples/mahavishnu-shell.ts"], { cwd: ROOT, env: env() });
    t.after(() => shell.dispose());
    await shell.waitFor("mahavishnu> ");
    const [, sessionId, traceId] = (await shell.waitFor(BANNER)) as unknown as [string, string, string];
    shell.type("workflows.get('nightly-sync').status");
    await shell.waitFor("'idle'");
    shell.type(".exit");
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
    const span = await sessionSpan(sessionId);
    assert.equal(span.traceId, traceId);
    assert.equal(span.resource["service.name"], "mahavishnu");
    assert.equal(span.attributes["shell.component.name"], "mahavishnu");
    assert.equal(span.attributes["shell.type"], "MahavishnuShell");
    assert.equal(span.attributes["shell.component.version"], "2.3.0");
    assert.deepEqual(span.attributes["shell.adapters"], ["redis", "postgres"]);
  });

  test("node examples/session-buddy-shell.ts", async (t) => {
    const shell = spawnPty(["examples/session-buddy-shell.ts"], { cwd: ROOT, env: env() });
    t.after(() => shell.dispose());
    await shell.waitFor("session-buddy> ");
    const [, sessionId, traceId] = (await shell.waitFor(BANNER)) as unknown as [string, string, string];
    const mark = shell.mark();
    shell.type(".trace");
    await shell.waitFor(traceId, { since: mark });
    shell.write("\x04");
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
    const span = await sessionSpan(sessionId);
    assert.equal(span.attributes["shell.component.name"], "session-buddy");
    assert.equal(span.attributes["shell.type"], "SessionBuddyShell");
    assert.equal(span.attributes["shell.component.version"], "0.9.1");
    assert.deepEqual(span.attributes["shell.adapters"], ["sqlite"]);
    assert.equal(span.attributes["shell.exit.reason"], "eof");
  });

  test("OTEL_SERVICE_NAME=inventory node examples/programmatic-setup.ts", async (t) => {
    const shell = spawnPty(["examples/programmatic-setup.ts"], {
      cwd: ROOT,
      env: env({ OTEL_SERVICE_NAME: "inventory" }),
    });
    t.after(() => shell.dispose());
    await shell.waitFor("telemetry: sdk");
    await shell.waitFor("inventory> ");
    const [, sessionId, traceId] = (await shell.waitFor(BANNER)) as unknown as [string, string, string];
    shell.type("stock.widgets + stock.gadgets");
    await shell.waitFor(/^15$/m);
    shell.type(".exit");
    await shell.waitFor(`inputs evaluated: 1, trace ${traceId}`);
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
    const span = await sessionSpan(sessionId);
    assert.equal(span.resource["service.name"], "inventory");
    assert.equal(span.attributes["shell.component.name"], "inventory");
    assert.equal(span.attributes["shell.component.version"], "1.4.0");
    const evals = receiver.spans.filter((s) => s.traceId === traceId && s.name === "shell.eval");
    assert.equal(evals.length, 1);
    assert.equal(evals[0]?.attributes["shell.eval.input"], undefined);
  });
});

/** The `node …` commands of the recipe's shell blocks: environment assignments and arguments. */
function documentedCommands(markdown: string): Array<{ line: string; env: Record<string, string>; args: string[] }> {
  const blocks = [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  const commands = [];
  for (const line of blocks.flatMap((b) => b.split("\n")).map((l) => l.trim())) {
    const m = /^((?:[A-Z_]+=\S+\s+)*)node\s+(.+)$/.exec(line);
    if (!m) continue;
    const env = Object.fromEntries(
      (m[1] ?? "")
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((a) => a.split("=", 2)),
    );
    commands.push({ line, env, args: (m[2] ?? "").split(/\s+/) });
  }
  return commands;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("examples/auto-instrumentation.md", () => {
  const commands = documentedCommands(readFileSync(join(ROOT, "examples/auto-instrumentation.md"), "utf8"));

  test("documents the --import commands", () => {
    assert.ok(commands.length >= 3, JSON.stringify(commands));
    assert.ok(commands.every((c) => c.args.includes("otel-shell-sessions/register")));
  });

  for (const command of commands) {
    test(command.line, async (t) => {
      // A free port instead of 9464, which another program on this machine may hold.
      const port =
        command.env.OTEL_METRICS_EXPORTER === "prometheus"
          ? { OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()) }
          : {};
      const shell = spawnPty(command.args, { cwd: ROOT, env: env({ ...command.env, ...port }) });
      t.after(() => shell.dispose());
      await shell.waitFor("admin> ");
      const sessionId = (await shell.waitFor(BANNER))[1] as string;
      shell.type("config.replicas");
      await shell.waitFor(/^3$/m);
      shell.type(".exit");
      assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
      const span = await sessionSpan(sessionId);
      assert.equal(span.attributes["shell.exit.reason"], "exit_command");
      if (command.env.OTEL_SERVICE_NAME)
        assert.equal(span.attributes["shell.component.name"], command.env.OTEL_SERVICE_NAME);
    });
  }
});
