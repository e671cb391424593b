/**
 * One component default everywhere: a shell run with `--import
 * otel-shell-sessions/register` and no component configured carries the same
 * name in its shell metrics, in the tracker's store and in the tracker's
 * metrics, and it is the default docs/configuration.md states.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { storedSessions } from "../exporter/support.ts";
import { freePort } from "../helpers/ports.ts";
import { spawnPty } from "../helpers/pty.ts";
import { childEnv, startTracker } from "../helpers/tracker.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const REGISTER = join(ROOT, "dist/register.js");
const HOST = join(ROOT, "test/fixtures/repl-host.cjs");

function documentedDefault(): string {
  const row = readFileSync(join(ROOT, "docs/configuration.md"), "utf8")
    .split("\n")
    .find((line) => line.startsWith("| `SHELL_SESSIONS_COMPONENT` |"));
  const value = /else `([^`]+)`/.exec(row ?? "")?.[1];
  assert.ok(value, `no default in the SHELL_SESSIONS_COMPONENT row of docs/configuration.md: ${row}`);
  return value;
}

/** The `shell_component_name` of the first sample of `metric` with value 1 at `port`, polled until the deadline. */
async function componentLabel(port: number, metric: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  const pattern = new RegExp(`^${metric}\\{[^}]*shell_component_name="([^"]*)"[^}]*\\} 1$`, "m");
  let text = "";
  for (;;) {
    text = await fetch(`http://127.0.0.1:${port}/metrics`)
      .then((r) => r.text())
      .catch(() => "");
    const label = pattern.exec(text)?.[1];
    if (label !== undefined) return label;
    assert.ok(Date.now() < deadline, `no ${metric} sample on :${port}:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("with no component configured, shell metrics, tracker store and tracker metrics carry the documented default", async (t) => {
  const trackerMetricsPort = await freePort();
  const tracker = await startTracker({
    env: {
      OTEL_SDK_DISABLED: "false",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(trackerMetricsPort),
    },
  });
  t.after(() => tracker.stop());
  const stateDir = mkdtempSync(join(tmpdir(), "component-default-"));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const shellMetricsPort = await freePort();
  const shell = spawnPty(["--import", REGISTER, HOST], {
    cwd: ROOT,
    env: childEnv({
      OTEL_SDK_DISABLED: undefined,
      SHELL_SESSIONS_STATE_DIR: stateDir,
      SESSION_BUDDY_URL: tracker.url,
      SESSION_BUDDY_SECRET: tracker.secret,
      OTEL_TRACES_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(shellMetricsPort),
      FIXTURE_AFTER_CLOSE: "stay",
    }),
  });
  t.after(() => shell.dispose());
  await shell.waitFor("host> ");
  await shell.waitFor("session tracking on");
  shell.type(".exit");
  await shell.waitFor("[host] shell closed");

  const expected = documentedDefault();
  assert.match(expected, /^[a-zA-Z0-9_-]+$/, "the documented default is a name the contract accepts");
  assert.equal(await componentLabel(shellMetricsPort, "shell_session_ended_total"), expected, "shell metrics");
  assert.equal(
    await componentLabel(trackerMetricsPort, "shell_tracker_sessions_ended_total"),
    expected,
    "tracker metrics",
  );
  const { sessions } = await storedSessions(tracker.store);
  assert.deepEqual(
    sessions.map((s) => [s.component_name, s.status]),
    [[expected, "ended"]],
    "tracker store",
  );
  shell.kill("SIGTERM");
  await shell.waitForExit();
});
