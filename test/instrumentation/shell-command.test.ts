/**
 * `shell-sessions shell` (and `npm start`): the demo admin shell, driven
 * through a real PTY, with its session span read from an OTLP receiver.
 * Needs `npm run build` (the CLI runs from dist/).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { spawnPty } from "../helpers/pty.ts";
import { CLI, openTrackedShell, ROOT, shellTestbed } from "./shell-testbed.ts";

const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
const bed = shellTestbed("shell-command-");

/** No component or service name comes in from the environment: the demo shell's own default applies. */
const env = (extra: NodeJS.ProcessEnv = {}) =>
  bed.env({ SHELL_SESSIONS_COMPONENT: "", OTEL_SERVICE_NAME: "", ...extra });

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env() },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("usage", () => {
  test("--help documents the options and the environment, and exits 0", async () => {
    const { code, stdout } = await cli(["shell", "--help"]);
    assert.equal(code, 0);
    for (const word of [
      "--component",
      "--no-tracking",
      "--eval-spans",
      "--capture-input",
      "OTEL_EXPORTER_OTLP_ENDPOINT",
      "SHELL_SESSIONS_DELIVERY",
    ]) {
      assert.ok(stdout.includes(word), `--help mentions ${word}`);
    }
  });

  test("an unknown option or a bad component name is a usage error (2) that says what is wrong", async () => {
    const unknown = await cli(["shell", "--colour"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /shell-sessions shell: .*--colour/);
    assert.match(unknown.stderr, /Usage: shell-sessions shell/);
    const bad = await cli(["shell", "--component", "no spaces please"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--component: must contain only letters, digits/);
  });
});

describe("the demo shell", () => {
  test("shows the banner, the demo objects and the session; its span describes the demo component", async (t) => {
    const { shell, sessionId, traceId } = await openTrackedShell(t, [CLI, "shell", "--component", "ops"], {
      prompt: "ops> ",
      env: env(),
    });
    let mark = shell.mark();
    shell.type("inventory.take('W-1', 2)");
    await shell.waitFor(/^10$/m, { since: mark });
    mark = shell.mark();
    shell.type("session.traceId");
    await shell.waitFor(`'${traceId}'`, { since: mark });
    mark = shell.mark();
    shell.type(".help");
    await shell.waitFor(/\.session\s+Show this shell's session id and trace id/, { since: mark });
    mark = shell.mark();
    shell.type(".clear");
    shell.type("health().status + ' ' + session.id");
    await shell.waitFor(`'ok ${sessionId}'`, { since: mark });
    shell.type(".exit");
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
    const span = await bed.sessionSpan(sessionId);
    assert.equal(span.traceId, traceId);
    assert.equal(span.resource["service.name"], "ops");
    assert.equal(span.attributes["shell.component.name"], "ops");
    assert.equal(span.attributes["shell.type"], "DemoShell");
    assert.equal(span.attributes["shell.component.version"], version);
    assert.deepEqual(span.attributes["shell.adapters"], ["memory"]);
    assert.equal(span.attributes["shell.eval.count"], 3);
  });

  test("--no-tracking opens the same shell without telemetry", async (t) => {
    const shell = spawnPty([CLI, "shell", "--no-tracking"], { env: env() });
    t.after(() => shell.dispose());
    await shell.waitFor("session tracking off");
    await shell.waitFor("demo> ");
    const mark = shell.mark();
    shell.type("typeof session + ' ' + inventory.list().length");
    await shell.waitFor("'undefined 2'", { since: mark });
    shell.write("\x04");
    assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
    assert.doesNotMatch(shell.output, /session tracking on/);
  });

  test("npm start opens it", async (t) => {
    const { shell } = await openTrackedShell(t, ["start"], { prompt: "demo> ", file: "npm", cwd: ROOT, env: env() });
    shell.type(".exit");
    assert.equal((await shell.waitForExit()).exitCode, 0);
  });
});
