/**
 * Delivery when the tracker is down, dies, or comes back: real tracker
 * processes, real shells (`--import otel-shell-sessions/register`), the real
 * spool and `shell-sessions spool drain`. Needs `npm run build`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { SessionRecord } from "../../src/contract/index.ts";
import {
  ATTR_SHELL_EMISSION_OUTCOME,
  ATTR_SHELL_EVENT_TYPE,
  ATTR_SHELL_TRACKER_SESSION_ID,
  METRIC_SHELL_EMISSIONS,
  METRIC_SHELL_EXPORTER_CIRCUIT_STATE,
  METRIC_SHELL_SPOOL_DEPTH,
} from "../../src/semconv.ts";
import { runCli, startTracker, type TrackerProcess } from "../helpers/tracker.ts";
import {
  attribute,
  deliveryEnv,
  endSession,
  harness,
  metricsProbe,
  runShellHost,
  type ShellProcess,
  shellEnv,
  startSession,
  storedSessions,
  tempDir,
  waitFor,
} from "./support.ts";

/** Short timings so outages resolve within a test; the logic is the same as with the defaults. */
function fastDelivery(dir: string, tracker: TrackerProcess, url: string): NodeJS.ProcessEnv {
  return {
    SHELL_SESSIONS_STATE_DIR: dir,
    SESSION_BUDDY_URL: url,
    SESSION_BUDDY_SECRET: tracker.secret,
    SHELL_SESSIONS_CALL_TIMEOUT_MS: "2000",
    SHELL_SESSIONS_BREAKER_RESET_MS: "500",
    SHELL_SESSIONS_SPOOL_RETRY_MS: "200",
    SHELL_SESSIONS_RETRY_MAX_ELAPSED_MS: "1500",
  };
}

/** Brings a stopped or killed tracker back on its port, store and secret. */
async function startAgain(tracker: TrackerProcess): Promise<void> {
  // restart() stops what is still running (nothing, here) and starts anew on the same port.
  await tracker.restart();
}

async function spoolState(dir: string): Promise<{ pending: number; rejected: number; lost: number }> {
  const r = await runCli(["spool", "--json"], { SHELL_SESSIONS_STATE_DIR: dir });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

function checkExactlyOnce(sessions: SessionRecord[], events: number, expected: number): void {
  assert.equal(sessions.length, expected, "every session recorded, none twice");
  const locals = new Set(sessions.map((s) => String(s.metadata.local_session_id)));
  assert.equal(locals.size, expected, "no shell session recorded under two tracker sessions");
  const notEnded = sessions.filter((s) => s.status !== "ended");
  assert.deepEqual(
    notEnded.map((s) => `${s.session_id}:${s.status}`),
    [],
    "every end arrived",
  );
  assert.equal(events, expected * 2, "the event log holds each start and each end exactly once");
  for (const s of sessions) {
    assert.ok(s.ended_at !== null && s.ended_at >= s.started_at, "start before end");
    const own = Number(s.end_metadata?.duration_seconds);
    assert.ok(
      Math.abs(Number(s.duration_seconds) - own) < 0.01,
      `duration is the session's own length (${s.duration_seconds} vs ${own})`,
    );
  }
}

test("outage: tracker stopped, 50 shells open and close, tracker back → one drain records all 100 events exactly once", async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const { url } = tracker;
  await tracker.kill("SIGTERM");
  // 50 shells: 5 programs with 10 sessions each, 5 at a time.
  const env = shellEnv({
    ...fastDelivery(dir, tracker, url),
    FIXTURE_SESSIONS: "10",
    FIXTURE_CONCURRENCY: "5",
    FIXTURE_MAX_LENGTH_MS: "200",
  });
  const shells = Array.from({ length: 5 }, () => runShellHost(env));
  for (const shell of shells) {
    const exit = await shell.exited;
    assert.equal(exit.code, 0, shell.stderr());
    assert.match(shell.stdout(), /done 10/);
  }
  const before = await spoolState(dir);
  assert.equal(before.pending, 100, "all 100 events waited in the spool");
  assert.equal(before.lost, 0);

  await startAgain(tracker);
  const drained = await runCli(["spool", "drain"], fastDelivery(dir, tracker, tracker.url) as Record<string, string>);
  assert.equal(drained.code, 0, drained.stderr);
  assert.match(drained.stdout, /delivered 100, rejected 0, still waiting 0/);
  const { sessions, events } = await storedSessions(tracker.store);
  checkExactlyOnce(sessions, events, 50);
  for (const s of sessions) assert.equal(s.exit_reason, "exit_command");
  assert.equal((await spoolState(dir)).pending, 0);
});

test("the tracker SIGKILLed at random moments during 500 shell sessions, restarted each time: 0 lost, 0 duplicates", async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const { url } = tracker;
  // 500 sessions: 5 programs × 100 sessions, 5 open at a time, each up to 1 s long.
  const env = shellEnv({
    ...fastDelivery(dir, tracker, url),
    FIXTURE_SESSIONS: "100",
    FIXTURE_CONCURRENCY: "5",
    FIXTURE_MAX_LENGTH_MS: "1000",
  });
  const shells: ShellProcess[] = Array.from({ length: 5 }, () => runShellHost(env));
  let running = shells.length;
  for (const shell of shells) void shell.exited.then(() => running--);
  let kills = 0;
  const deadline = Date.now() + 120_000;
  while (running > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500 + Math.random() * 1500));
    if (running === 0) break;
    await tracker.kill("SIGKILL");
    kills++;
    await new Promise((r) => setTimeout(r, Math.random() * 300));
    await startAgain(tracker);
  }
  for (const shell of shells) {
    const exit = await shell.exited;
    assert.equal(exit.code, 0, shell.stderr());
    assert.match(shell.stdout(), /done 100/);
  }
  assert.ok(kills >= 3, `the tracker was killed during the run (${kills} times)`);
  t.diagnostic(`tracker SIGKILLed ${kills} times during 500 sessions`);
  const drained = await runCli(["spool", "drain"], fastDelivery(dir, tracker, tracker.url) as Record<string, string>);
  assert.equal(drained.code, 0, `${drained.stdout}${drained.stderr}`);
  assert.match(drained.stdout, /still waiting 0/);
  t.diagnostic(`left for the final drain: ${drained.stdout.trim()}`);
  const { sessions, events } = await storedSessions(tracker.store);
  checkExactlyOnce(sessions, events, 500);
  assert.equal((await spoolState(dir)).lost, 0);
});

test("shells ended by process.exit(), SIGTERM and SIGHUP while the tracker is down: their ends arrive later from the spool", async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const { url } = tracker;
  await tracker.kill("SIGTERM");
  const base = fastDelivery(dir, tracker, url);
  const byExit = runShellHost(shellEnv({ ...base, FIXTURE_END: "process_exit" }));
  const byTerm = runShellHost(shellEnv({ ...base, FIXTURE_END: "wait" }));
  const byHup = runShellHost(shellEnv({ ...base, FIXTURE_END: "wait" }));
  const traces: Record<string, string> = {};
  for (const [name, shell] of [
    ["process_exit", byExit],
    ["sigterm", byTerm],
    ["sighup", byHup],
  ] as const) {
    traces[name] = await waitFor(`${name} shell ready`, () => /ready ([0-9a-f]{32})/.exec(shell.stdout())?.[1]);
  }
  byTerm.child.kill("SIGTERM");
  byHup.child.kill("SIGHUP");
  assert.equal((await byExit.exited).code, 3, "process.exit(3) still exits with 3");
  assert.equal((await byTerm.exited).signal, "SIGTERM");
  assert.equal((await byHup.exited).signal, "SIGHUP");
  const spooled = await spoolState(dir);
  assert.equal(spooled.pending, 6, "three starts and three ends wait in the spool");

  await startAgain(tracker);
  const drained = await runCli(["spool", "drain"], fastDelivery(dir, tracker, tracker.url) as Record<string, string>);
  assert.equal(drained.code, 0, drained.stderr);
  assert.match(drained.stdout, /delivered 6, rejected 0, still waiting 0/);
  const { sessions, events } = await storedSessions(tracker.store);
  checkExactlyOnce(sessions, events, 3);
  const reasonByTrace = Object.fromEntries(sessions.map((s) => [s.trace_id, s.exit_reason]));
  assert.deepEqual(reasonByTrace, {
    [traces.process_exit as string]: "process_exit",
    [traces.sigterm as string]: "sigterm",
    [traces.sighup as string]: "sighup",
  });
});

test("breaker: after 3 consecutive failures calls are short-circuited (counted); it closes again once the tracker answers", async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const { url } = tracker;
  await tracker.kill("SIGTERM");
  const metrics = metricsProbe(t);
  const h = harness(
    t,
    deliveryEnv(dir, {
      SESSION_BUDDY_URL: url,
      SESSION_BUDDY_SECRET: tracker.secret,
      SHELL_SESSIONS_BREAKER_RESET_MS: "4000",
      SHELL_SESSIONS_RETRY_MAX_ELAPSED_MS: "5000",
    }),
    { meterProvider: metrics.meterProvider },
  );
  const failedCalls = () =>
    h.spans.getFinishedSpans().filter((s) => s.name.startsWith("tools/call ") && s.status.code === 2).length;
  const shortCircuited = () =>
    metrics.value(METRIC_SHELL_EMISSIONS, {
      [ATTR_SHELL_EVENT_TYPE]: "session_start",
      [ATTR_SHELL_EMISSION_OUTCOME]: "short_circuited",
    });

  const first = startSession(h.provider);
  await waitFor("the first start to be short-circuited", async () => (await shortCircuited()) === 1);
  assert.equal(failedCalls(), 3, "three real calls failed, then the circuit opened");
  assert.equal(await metrics.value(METRIC_SHELL_EXPORTER_CIRCUIT_STATE), 2, "circuit state gauge: open");
  const second = startSession(h.provider);
  await waitFor("the second start to be short-circuited", async () => (await shortCircuited()) === 2);
  assert.equal(failedCalls(), 3, "an open circuit makes no call");
  assert.equal(await metrics.value(METRIC_SHELL_SPOOL_DEPTH), 2, "both starts wait in the spool");

  await startAgain(tracker);
  await waitFor("the circuit to close", async () => (await metrics.value(METRIC_SHELL_EXPORTER_CIRCUIT_STATE)) === 0);
  for (const span of [first, second]) {
    await waitFor("the tracker id on the span", () => attribute(span, ATTR_SHELL_TRACKER_SESSION_ID));
    endSession(span);
  }
  const { sessions } = await waitFor("both sessions ended in the tracker", async () => {
    const found = await storedSessions(tracker.store);
    return found.sessions.length === 2 && found.sessions.every((s) => s.status === "ended") && found;
  });
  assert.deepEqual(
    sessions.map((s) => s.trace_id).sort(),
    [first.spanContext().traceId, second.spanContext().traceId].sort(),
  );
  await waitFor("the spool to be empty", async () => (await metrics.value(METRIC_SHELL_SPOOL_DEPTH)) === 0);
});
