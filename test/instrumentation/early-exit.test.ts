/**
 * A process that exits in the moment between its first prompt and the SDK
 * having loaded: its shell's start and end are already written ahead, so the
 * drain helper hands them to the spool (here the tracker is unreachable),
 * and the process still exits exactly as it would have. One whose shell
 * ends while the SDK is loading does not wait for the loading to finish.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Spool } from "../../src/exporter/spool.ts";
import { storedSessions, tempDir, trackedShellEnv, waitFor } from "../exporter/support.ts";
import { spawnPty } from "../helpers/pty.ts";
import { startTracker } from "../helpers/tracker.ts";

const REGISTER = fileURLToPath(new URL("../../dist/register.js", import.meta.url));
const EXIT_HOST = fileURLToPath(new URL("../fixtures/exit-host.mjs", import.meta.url));
const EXIT_AT_ONCE = `
const { PassThrough } = require("node:stream");
require("node:repl").start({ input: new PassThrough(), output: new PassThrough() });
process.exit(4);
`;

function run(extraEnv: NodeJS.ProcessEnv) {
  const dir = mkdtempSync(join(tmpdir(), "sss-early-"));
  const result = spawnSync(process.execPath, ["--import", REGISTER, "-e", EXIT_AT_ONCE], {
    encoding: "utf8",
    timeout: 30_000,
    env: {
      ...process.env,
      SHELL_SESSIONS_STATE_DIR: dir,
      SESSION_BUDDY_URL: "http://127.0.0.1:9/mcp",
      // The helper gives up at once here: this test only looks at what it hands to the spool.
      SHELL_SESSIONS_HELPER_TIMEOUT_MS: "0",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      ...extraEnv,
    },
  });
  return { ...result, dir };
}

async function spooledKinds(dir: string): Promise<string[]> {
  return waitFor("the start and end in the spool, and the journal gone", () => {
    const journals = readdirSync(join(dir, "journal")).filter((name) => name.includes(".jsonl"));
    if (journals.length > 0 || !Spool.exists(join(dir, "spool.db"))) return undefined;
    const spool = Spool.open(join(dir, "spool.db"), { limits: { maxEvents: 100, maxBytes: 1 << 20 } });
    try {
      const kinds = spool.batch(0, 10).map((row) => row.kind);
      return kinds.length === 2 ? kinds : undefined;
    } finally {
      spool.close();
    }
  });
}

test("a shell that dies before telemetry has loaded is still recorded, and the exit status is kept", async () => {
  const { status, stderr, dir } = run({});
  assert.equal(status, 4);
  assert.doesNotMatch(stderr, /not recorded/);
  assert.deepEqual(await spooledKinds(dir), ["start", "end"]);
});

test("the same with the SDK switched off: delivery does not depend on it", async () => {
  const { status, dir } = run({ OTEL_SDK_DISABLED: "true" });
  assert.equal(status, 4);
  assert.deepEqual(await spooledKinds(dir), ["start", "end"]);
});

test("with SHELL_SESSIONS_DELIVERY=off nothing is written ahead", () => {
  const { status, dir } = run({ SHELL_SESSIONS_DELIVERY: "off" });
  assert.equal(status, 4);
  assert.throws(() => readdirSync(join(dir, "journal")), /ENOENT/);
});

test("a shell that ends while the SDK is loading: the program exits without finishing the loading, and the shell is recorded", async (t) => {
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  // `.exit` 300 ms after the shell opened: its prompt is up and the SDK is loading, in slices, for most of a second.
  const env = trackedShellEnv(tracker, tempDir(t, "sss-loading-"), {
    SHELL_SESSIONS_LOG: "debug",
    EXIT_HOST_ACT: "exit_command",
    EXIT_HOST_ACT_MS: "300",
  });
  const shell = spawnPty(["--import", REGISTER, EXIT_HOST], { env });
  t.after(() => shell.dispose());
  const exit = await shell.waitForExit();
  assert.equal(exit.exitCode, 0);
  assert.match(shell.output, /host> /, "the prompt was up");
  assert.doesNotMatch(shell.output, /delivering sessions/, "the program waited for the exporter to load");
  const session = await waitFor("the shell recorded, by the drain helper", async () => {
    const { sessions } = await storedSessions(tracker.store);
    return sessions.find((s) => s.pid === shell.pid && s.status === "ended");
  });
  assert.equal(session.exit_reason, "exit_command");
});
