/**
 * Delivery when the tracker is down, dies, or comes back: real tracker
 * processes, real shells (`--import otel-shell-sessions/register`), the real
 * spool and `shell-sessions spool drain`. Needs `npm run build`.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import type { SessionRecord } from "../../src/contract/index.ts";
import {
  ATTR_SHELL_CIRCUIT_STATE,
  METRIC_SHELL_EXPORTER_CIRCUIT_STATE,
  METRIC_SHELL_SPOOL_DEPTH,
} from "../../src/semconv.ts";
import { startDelayProxy } from "../helpers/delay-proxy.ts";
import { runCli, startTracker, type TrackerProcess } from "../helpers/tracker.ts";
import {
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
  trackerSessionId,
  waitFor,
} from "./support.ts";

interface Outage {
  /** The shells' state dir (and spool). */
  dir: string;
  tracker: TrackerProcess;
  /** Delivery to the tracker with short timings, so outages resolve within a test (the logic is that of the defaults). */
  delivery: NodeJS.ProcessEnv;
}

/**
 * A state dir and a tracker for the length of `t`; with `down`, the tracker is
 * stopped before the test goes on. Its URL stays the same across restarts.
 */
async function trackerAndShells(t: TestContext, { down }: { down: boolean }): Promise<Outage> {
  const dir = tempDir(t);
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const delivery = {
    SHELL_SESSIONS_STATE_DIR: dir,
    SESSION_BUDDY_URL: tracker.url,
    SESSION_BUDDY_SECRET: tracker.secret,
    SHELL_SESSIONS_CALL_TIMEOUT_MS: "2000",
    SHELL_SESSIONS_BREAKER_RESET_MS: "500",
    SHELL_SESSIONS_SPOOL_RETRY_MS: "200",
    SHELL_SESSIONS_RETRY_MAX_ELAPSED_MS: "1500",
  };
  if (down) await tracker.kill("SIGTERM");
  return { dir, tracker, delivery };
}

/** Brings a stopped or killed tracker back on its port, store and secret. */
async function startAgain(tracker: TrackerProcess): Promise<void> {
  // restart() stops what is still running (nothing, here) and starts anew on the same port.
  await tracker.restart();
}

/** Five shell programs, each running `sessions` sessions of up to `maxLengthMs`, five at a time. */
function fiveShellPrograms(delivery: NodeJS.ProcessEnv, sessions: number, maxLengthMs: number): ShellProcess[] {
  const env = shellEnv({
    ...delivery,
    FIXTURE_SESSIONS: String(sessions),
    FIXTURE_CONCURRENCY: "5",
    FIXTURE_MAX_LENGTH_MS: String(maxLengthMs),
  });
  return Array.from({ length: 5 }, () => runShellHost(env));
}

/** Waits for every program to exit 0, having run all its sessions. */
async function allDone(shells: ShellProcess[], sessions: number): Promise<void> {
  for (const shell of shells) {
    const exit = await shell.exited;
    assert.equal(exit.code, 0, shell.stderr());
    assert.match(shell.stdout(), new RegExp(`done ${sessions}\\b`));
  }
}

/** `shell-sessions spool drain`, which must succeed; its report. */
async function drain(delivery: NodeJS.ProcessEnv): Promise<string> {
  const drained = await runCli(["spool", "drain"], delivery);
  assert.equal(drained.code, 0, `${drained.stdout}${drained.stderr}`);
  return drained.stdout;
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

test("outage: tracker stopped, 50 shells open and close, tracker back → all 100 events recorded exactly once, by themselves", async (t) => {
  const { dir, tracker, delivery } = await trackerAndShells(t, { down: true });
  // 50 shells: 5 programs with 10 sessions each.
  await allDone(fiveShellPrograms(delivery, 10, 200), 10);
  const before = await spoolState(dir);
  assert.equal(before.pending, 100, "all 100 events waited in the spool");
  assert.equal(before.lost, 0);

  await startAgain(tracker);
  // The drain helpers the five programs left behind deliver the spool: no shell started, no command run.
  const { sessions, events } = await waitFor("the helpers to deliver all 50 sessions", async () => {
    const stored = await storedSessions(tracker.store);
    return stored.sessions.filter((s) => s.status === "ended").length === 50 ? stored : undefined;
  });
  checkExactlyOnce(sessions, events, 50);
  assert.match(await drain(delivery), /still waiting 0/, "nothing is left for a manual drain");
  for (const s of sessions) assert.equal(s.exit_reason, "exit_command");
  assert.equal((await spoolState(dir)).pending, 0);
});

test("outage over: the spool goes to a tracker that lists the batch tool in far fewer calls than events, each recorded once", async (t) => {
  const { dir, tracker, delivery } = await trackerAndShells(t, { down: true });
  // Through a proxy that only counts: it answers at once, and refuses (the tracker being down) until it is back.
  const counting = await startDelayProxy(tracker.url, 0);
  t.after(() => counting.close());
  const viaProxy = { ...delivery, SESSION_BUDDY_URL: counting.url };
  await allDone(fiveShellPrograms(viaProxy, 10, 100), 10);
  assert.equal((await spoolState(dir)).pending, 100, "all 100 events waited in the spool");

  await startAgain(tracker);
  const { sessions, events } = await waitFor("the helpers to deliver all 50 sessions", async () => {
    const stored = await storedSessions(tracker.store);
    return stored.sessions.filter((s) => s.status === "ended").length === 50 ? stored : undefined;
  });
  checkExactlyOnce(sessions, events, 50);
  const calls = counting.toolCalls.map((c) => c.tool);
  const batches = calls.filter((tool) => tool === "track_session_events").length;
  assert.ok(batches > 0, `calls: ${calls.join(", ")}`);
  // A drain's first call goes alone (its connect learns the tool list); then up to 50 events a call.
  assert.ok(calls.length <= 20, `100 events in ${calls.length} calls`);
});

test("the tracker SIGKILLed at random moments during 500 shell sessions, restarted each time: 0 lost, 0 duplicates", async (t) => {
  const { dir, tracker, delivery } = await trackerAndShells(t, { down: false });
  // 500 sessions: 5 programs × 100 sessions, each up to 1 s long.
  const shells = fiveShellPrograms(delivery, 100, 1000);
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
  await allDone(shells, 100);
  assert.ok(kills >= 3, `the tracker was killed during the run (${kills} times)`);
  t.diagnostic(`tracker SIGKILLed ${kills} times during 500 sessions`);
  const drained = await drain(delivery);
  assert.match(drained, /still waiting 0/);
  t.diagnostic(`left for the final drain: ${drained.trim()}`);
  const { sessions, events } = await storedSessions(tracker.store);
  checkExactlyOnce(sessions, events, 500);
  assert.equal((await spoolState(dir)).lost, 0);
});

test("shells ended by process.exit(), SIGTERM and SIGHUP while the tracker is down: their ends arrive later, by themselves", async (t) => {
  const { dir, tracker, delivery } = await trackerAndShells(t, { down: true });
  const byExit = runShellHost(shellEnv({ ...delivery, FIXTURE_END: "process_exit" }));
  const byTerm = runShellHost(shellEnv({ ...delivery, FIXTURE_END: "wait" }));
  const byHup = runShellHost(shellEnv({ ...delivery, FIXTURE_END: "wait" }));
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
  // No shell is started and no command run: the drain helpers the three processes left deliver their events.
  const { sessions, events } = await waitFor("the helpers to deliver all three sessions", async () => {
    const stored = await storedSessions(tracker.store);
    return stored.sessions.filter((s) => s.status === "ended").length === 3 ? stored : undefined;
  });
  checkExactlyOnce(sessions, events, 3);
  assert.match(await drain(delivery), /still waiting 0/, "nothing is left for a manual drain");
  const reasonByTrace = Object.fromEntries(sessions.map((s) => [s.trace_id, s.exit_reason]));
  assert.deepEqual(reasonByTrace, {
    [traces.process_exit as string]: "process_exit",
    [traces.sigterm as string]: "sigterm",
    [traces.sighup as string]: "sighup",
  });
});

test("a shell that dies later keeps its helper's whole timeout, though an earlier helper does the draining", async (t) => {
  const { tracker, delivery } = await trackerAndShells(t, { down: true });
  // Each helper gives up 12 s after its program ended; B's helper finds A's draining and leaves it the work.
  const env = shellEnv({ ...delivery, FIXTURE_END: "wait", SHELL_SESSIONS_HELPER_TIMEOUT_MS: "12000" });
  const a = runShellHost(env);
  const b = runShellHost(env);
  const traceOf = (shell: ShellProcess, name: string) =>
    waitFor(`${name} ready`, () => /ready ([0-9a-f]{32})/.exec(shell.stdout())?.[1]);
  const traces = [await traceOf(a, "A"), await traceOf(b, "B")];
  a.child.kill("SIGTERM");
  await a.exited;
  const aEnded = Date.now();
  // B ends 10 s after A, while A's helper still drains: B's helper's deadline is 10 s after the drainer's
  // own, room for the drainer's longest pause between passes (5 s) and the tracker's start.
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  b.child.kill("SIGTERM");
  await b.exited;
  // The tracker comes back after A's helper's own deadline, before B's.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, aEnded + 13_000 - Date.now())));
  await startAgain(tracker);
  const { sessions } = await waitFor(
    "both sessions delivered by the helper still draining",
    async () => {
      const stored = await storedSessions(tracker.store);
      return stored.sessions.filter((s) => s.status === "ended").length === 2 ? stored : undefined;
    },
    15_000,
  );
  assert.deepEqual(sessions.map((s) => s.trace_id).sort(), [...traces].sort());
});

test("breaker: after 3 consecutive failures calls are short-circuited (counted); it closes again once the tracker answers", async (t) => {
  const { dir, tracker, delivery } = await trackerAndShells(t, { down: true });
  const metrics = metricsProbe(t);
  const h = harness(
    t,
    deliveryEnv(dir, {
      SESSION_BUDDY_URL: delivery.SESSION_BUDDY_URL,
      SESSION_BUDDY_SECRET: tracker.secret,
      SHELL_SESSIONS_BREAKER_RESET_MS: "4000",
      SHELL_SESSIONS_RETRY_MAX_ELAPSED_MS: "5000",
    }),
    { meterProvider: metrics.meterProvider },
  );
  const failedCalls = () =>
    h.spans.getFinishedSpans().filter((s) => s.name.startsWith("tools/call ") && s.status.code === 2).length;
  const shortCircuited = () => metrics.emissions("short_circuited", "session_start");

  const first = startSession(h.provider);
  await waitFor("the first start to be short-circuited", async () => (await shortCircuited()) === 1);
  assert.equal(failedCalls(), 3, "three real calls failed, then the circuit opened");
  const circuit = async (state: string) =>
    metrics.value(METRIC_SHELL_EXPORTER_CIRCUIT_STATE, { [ATTR_SHELL_CIRCUIT_STATE]: state });
  assert.deepEqual(
    [await circuit("closed"), await circuit("half_open"), await circuit("open")],
    [0, 0, 1],
    "circuit state gauge: open",
  );
  const second = startSession(h.provider);
  await waitFor("the second start to be short-circuited", async () => (await shortCircuited()) === 2);
  assert.equal(failedCalls(), 3, "an open circuit makes no call");
  assert.equal(await metrics.value(METRIC_SHELL_SPOOL_DEPTH), 2, "both starts wait in the spool");

  await startAgain(tracker);
  await waitFor("the circuit to close", async () => (await circuit("closed")) === 1 && (await circuit("open")) === 0);
  for (const span of [first, second]) {
    await trackerSessionId(span);
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
