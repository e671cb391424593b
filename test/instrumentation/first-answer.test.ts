/**
 * What a person types at the first prompt of an instrumented shell is
 * answered while telemetry is still loading, not after it: the SDK, the
 * exporters and the MCP client load in slices after the prompt
 * (src/telemetry/slices.ts), and only once the REPL has read its history
 * and takes input. Checked by order, not by time: `6*7` is typed the moment
 * the prompt appears, and `42` must be on the terminal before the line the
 * shell prints once its telemetry has started. Loading everything at once
 * held the input back until that line had been printed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../exporter/support.ts";
import { spawnPty, stripAnsi } from "../helpers/pty.ts";
import { childEnv } from "../helpers/tracker.ts";
import { REGISTER, ROOT } from "./shell-testbed.ts";

const STARTED = "session tracking on";

test("the first prompt answers while telemetry loads: 42 comes before the line telemetry prints when it has started", async (t) => {
  // The shell leaves a drain helper in its state dir; tempDir's removal waits it out.
  const stateDir = tempDir(t, "first-answer-");
  const shell = spawnPty(["--import", REGISTER], {
    cwd: ROOT,
    env: childEnv({
      SHELL_SESSIONS_STATE_DIR: stateDir,
      // The REPL reads its history before it takes input: a file of its own, so that step always happens.
      NODE_REPL_HISTORY: join(stateDir, "repl-history"),
      // Nothing listens here; the events go to the spool. The SDK starts with every exporter package loaded.
      SESSION_BUDDY_URL: "http://127.0.0.1:9/mcp",
      OTEL_SDK_DISABLED: undefined,
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      SHELL_SESSIONS_HELPER_TIMEOUT_MS: "0",
    }),
  });
  t.after(() => shell.dispose());
  await shell.waitFor(/(^|\n)> /);
  shell.type("6*7");
  await shell.waitFor(new RegExp(STARTED));
  await shell.waitFor(/\n42\r?\n/);
  const text = stripAnsi(shell.output);
  const answer = text.search(/\n42\n/);
  const started = text.indexOf(STARTED);
  assert.ok(answer < started, `42 at ${answer}, "${STARTED}" at ${started}:\n${text}`);
  shell.type(".exit");
  assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
});
