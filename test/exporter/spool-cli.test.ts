/**
 * The spool on the command line (`shell-sessions spool`, `spool drain`) and
 * the spool's bounds, timeouts, damaged rows and damaged files (salvaged
 * counts, lost counts, the lost-events gauge, drain's exit codes), with real
 * servers and real SQLite files. The CLI runs from source, so no build is needed.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, statSync, truncateSync, writeSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Spool } from "../../src/exporter/spool.ts";
import { METRIC_SHELL_SPOOL_LOST } from "../../src/semconv.ts";
import { minimalStdioCommand, readRecords } from "../helpers/session-buddy-minimal.ts";
import {
  deliveryEnv,
  endSession,
  harness,
  type MinimalTracker,
  metricsProbe,
  minimalTracker,
  spoolStats,
  startSession,
  tempDir,
  waitFor,
} from "./support.ts";

const CLI = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
/** Sessions spooled before a spool file is damaged: 80 events over about 25 pages. */
const SESSIONS = 40;

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A minimal tracker that is down, and `n` sessions (start and end each) spooled by delivering them to it. */
async function spooledForDownTracker(t: TestContext, n: number): Promise<MinimalTracker> {
  const tracker = await minimalTracker(t);
  await tracker.server.stop();
  const h = harness(t, deliveryEnv(tracker.dir, { SESSION_BUDDY_URL: tracker.server.url }));
  for (let i = 0; i < n; i++) endSession(startSession(h.provider));
  await waitFor(`${2 * n} events spooled`, () => spoolStats(tracker.dir)?.pending === 2 * n);
  await h.provider.shutdown();
  return tracker;
}

test("spool --help teaches; bad usage exits 2 with the reason; an empty spool says so", async (t) => {
  const dir = tempDir(t);
  const env = deliveryEnv(dir);
  const help = await cli(["spool", "--help"], env);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /spool drain/);
  assert.match(help.stdout, /--timeout SECONDS/);
  assert.match(help.stdout, /SHELL_SESSIONS_STATE_DIR/);
  const bad = await cli(["spool", "--limit", "lots"], env);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--limit must be a whole number/);
  const both = await cli(["spool", "drain", "--url", "http://127.0.0.1:1/mcp", "--command", "x"], env);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /either --url or --command/);
  const empty = await cli(["spool"], env);
  assert.equal(empty.code, 0);
  assert.match(empty.stdout, /The spool is empty/);
});

test("spool lists what waits; drain against a tracker still down exits 1 and leaves everything; with it up, exits 0", async (t) => {
  const { dir, record, server } = await spooledForDownTracker(t, 2);
  const env = deliveryEnv(dir, { SESSION_BUDDY_URL: server.url });

  const listed = await cli(["spool"], env);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /Waiting: 4 \(pending 4, rejected 0\), oldest \d+s old/);
  assert.match(listed.stdout, /session_start +pending +mahavishnu/);
  assert.match(listed.stdout, /session_end +pending +mahavishnu/);
  const json = JSON.parse((await cli(["spool", "--json"], env)).stdout);
  assert.equal(json.pending, 4);
  assert.equal(json.events.length, 4);
  const order = json.events.map((e: { type: string; session: string }) => `${e.type}:${e.session}`);
  for (const event of json.events as { type: string; session: string }[]) {
    if (event.type === "session_end") {
      assert.ok(order.indexOf(`session_start:${event.session}`) < order.indexOf(`session_end:${event.session}`));
    }
  }

  const down = await cli(["spool", "drain", "--timeout", "20"], env);
  assert.equal(down.code, 1);
  assert.match(down.stdout, /delivered 0, rejected 0, still waiting 4/);
  assert.match(down.stderr, /4 event\(s\) still waiting/);
  const after = await cli(["spool"], env);
  assert.match(
    after.stdout,
    /session_start +pending +mahavishnu +\S+ +\d+s +[1-9]\d* +.*(ECONNREFUSED|circuit is open)/,
    "attempts and the last error are shown",
  );

  await server.restart();
  const up = await cli(["spool", "drain", "--url", server.url], deliveryEnv(dir));
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /delivered 4, rejected 0, still waiting 0/);
  assert.equal(readRecords(record).filter((r) => typeof r.answer === "object").length, 4);
  assert.match((await cli(["spool"], env)).stdout, /Waiting: 0/);
});

test("a damaged spool row is moved aside with a warning and never blocks the rest", async (t) => {
  const { dir, record } = await spooledForDownTracker(t, 2);
  const db = new DatabaseSync(join(dir, "spool.db"));
  // The first row (a start) becomes unreadable; the second session must still be delivered.
  db.prepare("UPDATE events SET payload = '{not json' WHERE seq = (SELECT MIN(seq) FROM events)").run();
  db.close();
  // Drained over stdio this time: the command spawns the server.
  const drained = await cli(["spool", "drain", "--command", minimalStdioCommand({ record })], deliveryEnv(dir));
  assert.equal(drained.code, 0, drained.stderr);
  assert.match(drained.stdout, /delivered 2, rejected 0, still waiting 0, quarantined 2/);
  assert.deepEqual(
    readRecords(record).map((r) => r.tool),
    ["track_session_start", "track_session_end"],
  );
  assert.match(drained.stderr, /moved spooled event .* to quarantine: its payload is not JSON/);
  assert.match(drained.stderr, /to quarantine: its start event was quarantined/);
  const stats = spoolStats(dir);
  assert.equal(stats?.quarantined, 2);
  assert.equal(stats?.pending, 0);
});

test("a full spool: the loss is counted (metric and spool) and logged, never silent", async (t) => {
  const { dir, server } = await minimalTracker(t);
  await server.stop();
  const metrics = metricsProbe(t);
  const h = harness(t, deliveryEnv(dir, { SESSION_BUDDY_URL: server.url, SHELL_SESSIONS_SPOOL_MAX_EVENTS: "3" }), {
    meterProvider: metrics.meterProvider,
  });
  for (let i = 0; i < 2; i++) endSession(startSession(h.provider));
  await waitFor("one event lost", async () => (await metrics.emissions("lost")) === 1);
  assert.equal(spoolStats(dir)?.pending, 3);
  assert.equal(spoolStats(dir)?.lost, 1);
  const lost = h.warnings.filter((w) => /lost a session_(start|end) event/.test(w));
  assert.equal(lost.length, 1);
  assert.match(lost[0] ?? "", /the spool holds its maximum of 3 events/);
  const listed = await cli(["spool"], deliveryEnv(dir));
  assert.match(listed.stdout, /Lost: 1/);
});

test("a call timeout really aborts the request: the tracker sees the client go, and the event is spooled", async (t) => {
  const { dir, record, server } = await minimalTracker(t, { delayMs: 20_000 });
  const h = harness(
    t,
    deliveryEnv(dir, {
      SESSION_BUDDY_URL: server.url,
      SHELL_SESSIONS_CALL_TIMEOUT_MS: "300",
      SHELL_SESSIONS_RETRY_ATTEMPTS: "1",
    }),
  );
  startSession(h.provider);
  await waitFor("the server to see the request aborted", () =>
    readRecords(record).some((r) => r.tool === "(disconnected)"),
  );
  await waitFor("the start to be spooled", () => spoolStats(dir)?.pending === 1);
  const spool = Spool.open(join(dir, "spool.db"), { limits: { maxEvents: 10, maxBytes: 1e6 } });
  t.after(() => spool.close());
  assert.match(spool.batch(0, 1)[0]?.lastError ?? "", /timed out after 300 ms/);
  assert.equal(
    readRecords(record).filter((r) => r.tool === "track_session_start").length,
    0,
    "the tracker never answered within the test",
  );
});

test("a processor added after a session started still delivers its start, then its end", async (t) => {
  const { dir, record, server } = await minimalTracker(t);
  const late = harness(t, deliveryEnv(dir, { SESSION_BUDDY_URL: server.url }));
  const { TracerProvider } = await import("@opentelemetry/sdk-trace");
  const elsewhere = new TracerProvider();
  const span = startSession(elsewhere);
  endSession(span);
  late.processor.onEnd(span as never);
  await waitFor("start and end", () => readRecords(record).length === 2);
  assert.deepEqual(
    readRecords(record).map((r) => r.tool),
    ["track_session_start", "track_session_end"],
  );
  assert.equal(
    (readRecords(record)[0]?.args.metadata as Record<string, unknown> | undefined)?.trace_id,
    span.spanContext().traceId,
  );
});

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
    const { dir, server } = await spooledForDownTracker(t, SESSIONS);
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
  const { dir, server } = await spooledForDownTracker(t, SESSIONS);
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
  const { dir, record, server } = await spooledForDownTracker(t, SESSIONS);
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
