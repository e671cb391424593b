/**
 * A process that exits in the moment between its first prompt and the SDK
 * having loaded cannot export or deliver that shell's session: it must say
 * so, and still exit exactly as it would have.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const REGISTER = fileURLToPath(new URL("../../dist/register.js", import.meta.url));
const EXIT_AT_ONCE = `
const { PassThrough } = require("node:stream");
require("node:repl").start({ input: new PassThrough(), output: new PassThrough() });
process.exit(4);
`;

function run(extraEnv: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, ["--import", REGISTER, "-e", EXIT_AT_ONCE], {
    encoding: "utf8",
    timeout: 30_000,
    env: {
      ...process.env,
      SHELL_SESSIONS_STATE_DIR: mkdtempSync(join(tmpdir(), "sss-early-")),
      SESSION_BUDDY_URL: "http://127.0.0.1:9/mcp",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      ...extraEnv,
    },
  });
}

test("a shell that dies before telemetry has loaded is reported on stderr, and the exit status is kept", () => {
  const result = run({});
  assert.equal(result.status, 4);
  assert.match(result.stderr, /otel-shell-sessions: 1 shell session ended before telemetry had finished loading/);
});

test("no such report when the SDK is switched off on purpose", () => {
  const result = run({ OTEL_SDK_DISABLED: "true" });
  assert.equal(result.status, 4);
  assert.doesNotMatch(result.stderr, /not recorded/);
});
