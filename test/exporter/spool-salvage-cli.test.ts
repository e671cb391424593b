/**
 * Damaged spools seen from outside: `shell-sessions spool` and `spool drain`
 * as real child processes, and the lost-events gauge of a real delivery, on
 * real SQLite files damaged in the middle, truncated, or with a garbage
 * header, and a tracker over real HTTP.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, statSync, truncateSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { METRIC_SHELL_SPOOL_LOST } from "../../src/semconv.ts";
import { readRecords } from "../helpers/session-buddy-minimal.ts";
import {
  deliveryEnv,
  endSession,
  harness,
  type MinimalTracker,
  metricsProbe,
  minimalTracker,
  spoolStats,
  startSession,
  waitFor,
} from "./support.ts";

const CLI = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const SESSIONS = 40;

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** `SESSIONS` sessions spooled for a tracker that is down; the spool file closed (checkpointed) afterwards. */
async function spooled(t: TestContext): Promise<MinimalTracker> {
  const tracker = await minimalTracker(t);
  await tracker.server.stop();
  const h = harness(t, deliveryEnv(tracker.dir, { SESSION_BUDDY_URL: tracker.server.url }));
  for (let i = 0; i < SESSIONS; i++) endSession(startSession(h.provider));
  await waitFor("every event spooled", () => spoolStats(tracker.dir)?.pending === 2 * SESSIONS);
  await h.provider.shutdown();
  return tracker;
}

const DAMAGE = {
  "damaged in the middle": (path: string) => {
    const fd = openSync(path, "r+");
    writeSync(fd, Buffer.alloc(4096, 0x41), 0, 4096, Math.floor(statSync(path).size / 2 / 4096) * 4096);
    closeSync(fd);
  },
  truncated: (path: string) => truncateSync(path, Math.floor((statSync(path).size * 0.6) / 4096) * 4096),
  "with a garbage header": (path: string) => {
    const fd = openSync(path, "r+");
    writeSync(fd, randomBytes(100), 0, 100, 0);
    closeSync(fd);
  },
} as const;

for (const [what, damage] of Object.entries(DAMAGE)) {
  test(`a spool ${what}: \`shell-sessions spool\` prints the salvaged and lost counts, which add up`, async (t) => {
    const { dir, server } = await spooled(t);
    damage(join(dir, "spool.db"));
    const env = deliveryEnv(dir, { SESSION_BUDDY_URL: server.url });
    const listed = await cli(["spool"], env);
    assert.equal(listed.code, 0, listed.stderr);
    const counts = /Lost: (\d+) {3}Salvaged: (\d+)/.exec(listed.stdout);
    assert.ok(counts, listed.stdout);
    const [lost, salvaged] = [Number(counts[1]), Number(counts[2])];
    assert.equal(lost + salvaged, 2 * SESSIONS, `lost ${lost} + salvaged ${salvaged}`);
    if (what === "with a garbage header") assert.equal(lost, 0);
    else assert.ok(lost > 0 && salvaged > 0, `lost ${lost}, salvaged ${salvaged}`);
    assert.match(listed.stdout, new RegExp(`Waiting: ${salvaged} `));
    assert.match(
      listed.stdout,
      /Damaged spool file replaced .*: salvaged \d+, lost \d+; kept at .*spool\.db\.corrupt-\d+/,
    );
    assert.match(listed.stderr, /was damaged .*salvaged \d+ event\(s\) into a fresh spool/, "and in the log");
    const json = JSON.parse((await cli(["spool", "--json"], env)).stdout);
    assert.deepEqual([json.lost, json.salvaged, json.salvages.length], [lost, salvaged, 1]);
  });
}

test("a damaged spool: the lost-events gauge of a delivery that opens it shows the loss", async (t) => {
  const { dir, server } = await spooled(t);
  DAMAGE["damaged in the middle"](join(dir, "spool.db"));
  const metrics = metricsProbe(t);
  // The tracker is still down: the delivery's start-up drain opens (and salvages) the spool and delivers nothing.
  const h = harness(t, deliveryEnv(dir, { SESSION_BUDDY_URL: server.url }), { meterProvider: metrics.meterProvider });
  const lost = await waitFor("the gauge to show a loss", async () => {
    const n = await metrics.value(METRIC_SHELL_SPOOL_LOST);
    return n > 0 ? n : undefined;
  });
  assert.equal(lost, spoolStats(dir)?.lost);
  assert.ok(
    h.warnings.some((w) => /was damaged .*could not be read and are counted as lost/.test(w)),
    "logged",
  );
});

test("spool drain on a damaged spool: exits 1 saying how many wait and why while the tracker is down, 0 once all are delivered", async (t) => {
  const { dir, record, server } = await spooled(t);
  DAMAGE.truncated(join(dir, "spool.db"));
  const env = deliveryEnv(dir, { SESSION_BUDDY_URL: server.url });
  const down = await cli(["spool", "drain", "--timeout", "20"], env);
  assert.equal(down.code, 1, down.stdout + down.stderr);
  const waiting = Number(/still waiting (\d+)/.exec(down.stdout)?.[1]);
  assert.ok(waiting > 0, down.stdout);
  assert.equal(waiting, spoolStats(dir)?.pending);
  assert.match(
    down.stderr,
    new RegExp(`${waiting} event\\(s\\) still waiting: the last attempt failed: .*(ECONNREFUSED|circuit)`),
  );
  assert.match(down.stderr, /was damaged .*salvaged/);

  await server.restart();
  const up = await cli(["spool", "drain"], env);
  assert.equal(up.code, 0, up.stdout + up.stderr);
  assert.match(up.stdout, /still waiting 0/);
  const delivered = readRecords(record).filter((r) => typeof r.answer === "object").length;
  assert.ok(delivered > 0 && delivered <= waiting, `delivered ${delivered} of ${waiting}`);
  assert.equal(spoolStats(dir)?.pending, 0);
});
