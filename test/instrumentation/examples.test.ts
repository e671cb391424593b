/**
 * Every example runs as documented: the component shells and the
 * programmatic set-up as `node examples/<name>.ts`, and the `--import`
 * recipe's commands exactly as auto-instrumentation.md shows them. Spans are
 * read from an OTLP receiver.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { freePort } from "../helpers/ports.ts";
import { openTrackedShell, ROOT, shellTestbed } from "./shell-testbed.ts";

const bed = shellTestbed("shell-examples-");

describe("component shells and the programmatic set-up", () => {
  test("node examples/mahavishnu-shell.ts", async (t) => {
    const { shell, sessionId, traceId } = await openTrackedShell(t, ["examples/mahavishnu-shell.ts"], {
      prompt: "mahavishnu> ",
      cwd: ROOT,
      env: bed.env(),
    });
    shell.type("workflows.get('nightly-sync').status");
    await shell.waitFor("'idle'");
    shell.type(".exit");
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
    const span = await bed.sessionSpan(sessionId);
    assert.equal(span.traceId, traceId);
    assert.equal(span.resource["service.name"], "mahavishnu");
    assert.equal(span.attributes["shell.component.name"], "mahavishnu");
    assert.equal(span.attributes["shell.type"], "MahavishnuShell");
    assert.equal(span.attributes["shell.component.version"], "2.3.0");
    assert.deepEqual(span.attributes["shell.adapters"], ["redis", "postgres"]);
  });

  test("node examples/session-buddy-shell.ts", async (t) => {
    const { shell, sessionId, traceId } = await openTrackedShell(t, ["examples/session-buddy-shell.ts"], {
      prompt: "session-buddy> ",
      cwd: ROOT,
      env: bed.env(),
    });
    const mark = shell.mark();
    shell.type(".trace");
    await shell.waitFor(traceId, { since: mark });
    shell.write("\x04");
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
    const span = await bed.sessionSpan(sessionId);
    assert.equal(span.attributes["shell.component.name"], "session-buddy");
    assert.equal(span.attributes["shell.type"], "SessionBuddyShell");
    assert.equal(span.attributes["shell.component.version"], "0.9.1");
    assert.deepEqual(span.attributes["shell.adapters"], ["sqlite"]);
    assert.equal(span.attributes["shell.exit.reason"], "eof");
  });

  test("OTEL_SERVICE_NAME=inventory node examples/programmatic-setup.ts", async (t) => {
    const { shell, sessionId, traceId } = await openTrackedShell(t, ["examples/programmatic-setup.ts"], {
      prompt: "inventory> ",
      cwd: ROOT,
      env: bed.env({ OTEL_SERVICE_NAME: "inventory" }),
    });
    await shell.waitFor("telemetry: sdk");
    shell.type("stock.widgets + stock.gadgets");
    await shell.waitFor(/^15$/m);
    shell.type(".exit");
    await shell.waitFor(`inputs evaluated: 1, trace ${traceId}`);
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
    const span = await bed.sessionSpan(sessionId);
    assert.equal(span.resource["service.name"], "inventory");
    assert.equal(span.attributes["shell.component.name"], "inventory");
    assert.equal(span.attributes["shell.component.version"], "1.4.0");
    const evals = bed.receiver.spans.filter((s) => s.traceId === traceId && s.name === "shell.eval");
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
      const { shell, sessionId } = await openTrackedShell(t, command.args, {
        prompt: "admin> ",
        cwd: ROOT,
        env: bed.env({ ...command.env, ...port }),
      });
      shell.type("config.replicas");
      await shell.waitFor(/^3$/m);
      shell.type(".exit");
      assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
      const span = await bed.sessionSpan(sessionId);
      assert.equal(span.attributes["shell.exit.reason"], "exit_command");
      if (command.env.OTEL_SERVICE_NAME)
        assert.equal(span.attributes["shell.component.name"], command.env.OTEL_SERVICE_NAME);
    });
  }
});
