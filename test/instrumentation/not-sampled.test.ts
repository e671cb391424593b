/**
 * Tracking is an audit record, not a trace sample: a shell whose span is not
 * sampled (`OTEL_TRACES_SAMPLER=always_off`), or whose process has the SDK
 * switched off (`OTEL_SDK_DISABLED=true`), is still in the tracker, while it
 * runs and once it has ended. Real shells under `--import register`, a real
 * tracker over HTTP. Needs `npm run build`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { SessionRecord } from "../../src/contract/index.ts";
import { shellEnv, storedSessions, tempDir, waitFor } from "../exporter/support.ts";
import { startTracker } from "../helpers/tracker.ts";

const HOST = fileURLToPath(new URL("../fixtures/exit-host.mjs", import.meta.url));
const REGISTER = fileURLToPath(new URL("../../dist/register.js", import.meta.url));

for (const [name, setting] of [
  ["a span that is not sampled", { OTEL_TRACES_SAMPLER: "always_off" }],
  ["the SDK switched off", { OTEL_SDK_DISABLED: "true" }],
] as const) {
  test(`${name}: the shell is recorded while it runs and when it ends`, async (t) => {
    const tracker = await startTracker();
    t.after(() => tracker.stop());
    const child = spawn(process.execPath, ["--import", REGISTER, HOST], {
      env: shellEnv({
        SHELL_SESSIONS_STATE_DIR: tempDir(t),
        SESSION_BUDDY_URL: tracker.url,
        SESSION_BUDDY_SECRET: tracker.secret,
        ...setting,
      }),
      stdio: ["pipe", "pipe", "pipe"],
    });
    t.after(() => child.kill("SIGKILL"));
    const mine = async (): Promise<SessionRecord | undefined> =>
      (await storedSessions(tracker.store)).sessions.find((s) => s.pid === child.pid);
    const active = await waitFor("the session active in the tracker", async () => {
      const session = await mine();
      return session?.status === "active" ? session : undefined;
    });
    assert.equal(active.component_name, "fixture");
    const exited = once(child, "exit");
    child.stdin.write(".exit\n");
    await exited;
    const ended = await waitFor("the session ended in the tracker", async () => {
      const session = await mine();
      return session?.status === "ended" ? session : undefined;
    });
    assert.equal(ended.exit_reason, "exit_command");
    assert.equal((await storedSessions(tracker.store)).events, 2, "one start and one end");
  });
}
