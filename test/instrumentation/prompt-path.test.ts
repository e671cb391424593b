/**
 * What `--import otel-shell-sessions/register` loads before a shell's first
 * prompt, from the built package: its entry, one re-export and the single
 * prompt-path bundle (scripts/prompt-path-bundle.ts), plus built-ins — no
 * OpenTelemetry, MCP or other package code. Each extra ES module there costs
 * about half a millisecond of the time to first prompt, so a change that
 * splits the path again, or a build that skips the bundle, fails here.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { tempDir } from "../exporter/support.ts";
import { childEnv } from "../helpers/tracker.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const RECORD_LOADS = join(ROOT, "test/fixtures/record-loads.mjs");

test("before the first prompt, register loads its entry, one re-export and the prompt-path bundle, and no package", async (t) => {
  // The shell leaves a drain helper in its state dir; tempDir's removal waits it out.
  const stateDir = tempDir(t, "prompt-path-");
  const child = spawn(process.execPath, ["--import", RECORD_LOADS, "--import", "otel-shell-sessions/register", "-i"], {
    cwd: ROOT,
    env: childEnv({
      SHELL_SESSIONS_STATE_DIR: stateDir,
      SESSION_BUDDY_URL: "http://127.0.0.1:9/mcp",
      SHELL_SESSIONS_HELPER_TIMEOUT_MS: "0",
    }),
    stdio: ["pipe", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdin.end();
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  assert.equal(code, 0, stderr);
  const line = /^LOADED (.*)$/m.exec(stderr)?.[1];
  assert.ok(line, `no prompt was written:\n${stderr}`);
  const loaded = JSON.parse(line) as string[];
  const dist = pathToFileURL(join(ROOT, "dist")).href;
  const own = loaded.filter((url) => url.startsWith(dist)).map((url) => url.slice(dist.length + 1));
  assert.deepEqual(own, ["register.js", "telemetry/bootstrap.js", "prompt-path.js"], `loaded: ${loaded.join(", ")}`);
  const others = loaded.filter((url) => !url.startsWith(dist) && !url.startsWith("node:"));
  assert.deepEqual(others, [], "package code before the prompt");
});
