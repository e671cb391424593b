/**
 * Happy paths against the real tracker process (`shell-sessions serve`), over
 * Streamable HTTP and over stdio: the session appears with the right fields,
 * the span carries the tracker's session id, and the tracker's own tool-call
 * span joins the shell session's trace. Needs `npm run build`.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { mintToken } from "../../src/auth/jwt.ts";
import { DEFAULTS } from "../../src/exporter/options.ts";
import { startDelayProxy } from "../helpers/delay-proxy.ts";
import { startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { CLI_PATH, runCli, startTracker } from "../helpers/tracker.ts";
import {
  deliveryEnv,
  endSession,
  harness,
  randomSecret,
  runShellHost,
  shellEnv,
  spoolStats,
  startSession,
  storedSessions,
  tempDir,
  trackerSessionId,
  waitFor,
} from "./support.ts";

async function checkRecorded(
  store: string,
  span: ReturnType<typeof startSession>,
  trackerSessionId: string,
): Promise<void> {
  const { sessions } = await waitFor("the session to be ended in the store", async () => {
    const found = await storedSessions(store);
    return found.sessions.length === 1 && found.sessions[0]?.status === "ended" && found;
  });
  const s = sessions[0];
  assert.ok(s);
  const { traceId, spanId } = span.spanContext();
  assert.equal(s.session_id, trackerSessionId);
  assert.equal(s.component_name, "mahavishnu");
  assert.equal(s.shell_type, "MahavishnuShell");
  assert.equal(s.hostname, hostname());
  assert.equal(s.pid, process.pid);
  assert.equal(s.cwd, process.cwd());
  assert.equal(s.trace_id, traceId);
  assert.equal(s.metadata.span_id, spanId);
  assert.equal(s.metadata.component_version, "1.2.3");
  assert.deepEqual(s.metadata.adapters, ["redis", "postgres"]);
  assert.equal(s.exit_reason, "exit_command");
  assert.equal(s.end_metadata?.eval_count, 3);
  const ownLength = Number(s.end_metadata?.duration_seconds);
  assert.ok(Math.abs(Number(s.duration_seconds) - ownLength) < 0.01, "duration is the session's own length");
}

test("over HTTP: recorded with the right fields, tracker id on the span, the tracker's span in the session's trace", async (t) => {
  const dir = tempDir(t);
  const receiver = await startOtlpReceiver();
  t.after(() => receiver.close());
  const tracker = await startTracker({ env: receiver.env() });
  t.after(() => tracker.stop());
  const h = harness(t, deliveryEnv(dir, { SESSION_BUDDY_URL: tracker.url, SESSION_BUDDY_SECRET: tracker.secret }));
  const span = startSession(h.provider);
  const trackerId = await trackerSessionId(span);
  endSession(span);
  await checkRecorded(tracker.store, span, trackerId);
  const { traceId } = span.spanContext();
  const joined = await receiver.waitForSpans((s) => s.traceId === traceId, 2);
  const client = await waitFor("our two MCP client spans", () => {
    const ended = h.spans.getFinishedSpans().filter((s) => s.name.startsWith("tools/call "));
    return ended.length === 2 && ended;
  });
  assert.deepEqual(joined.map((s) => s.name).sort(), [
    "tools/call track_session_end",
    "tools/call track_session_start",
  ]);
  for (const server of joined) {
    assert.ok(
      client.some((c) => c.spanContext().spanId === server.parentSpanId),
      "each tracker span is a child of our MCP client span",
    );
  }
  assert.deepEqual(h.warnings, []);
});

test("over stdio: the tracker is spawned with SESSION_BUDDY_COMMAND and records the session", async (t) => {
  const dir = tempDir(t);
  const receiver = await startOtlpReceiver();
  t.after(() => receiver.close());
  const secret = randomSecret();
  const store = `sqlite:${join(dir, "tracker.db")}`;
  const command = JSON.stringify([process.execPath, CLI_PATH, "serve", "--stdio", "--store", store]);
  const h = harness(
    t,
    deliveryEnv(dir, { SESSION_BUDDY_COMMAND: command, SESSION_BUDDY_SECRET: secret, ...receiver.env() }),
  );
  const span = startSession(h.provider);
  const trackerId = await trackerSessionId(span);
  endSession(span);
  await checkRecorded(store, span, trackerId);
  // The stdio server exits when delivery closes the connection; its spans are flushed on the way out.
  await h.provider.forceFlush();
  const { traceId } = span.spanContext();
  const joined = await receiver.waitForSpans((s) => s.traceId === traceId && s.name.startsWith("tools/call "), 2);
  assert.ok(joined.some((s) => s.name === "tools/call track_session_start"));
  assert.deepEqual(h.warnings, []);
});

test("a real shell (--import otel-shell-sessions/register) is recorded under the trace its banner shows", async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const shell = runShellHost(
    shellEnv({
      SHELL_SESSIONS_STATE_DIR: dir,
      SESSION_BUDDY_URL: tracker.url,
      SESSION_BUDDY_SECRET: tracker.secret,
      FIXTURE_END: "wait",
    }),
  );
  t.after(() => shell.child.kill("SIGKILL"));
  const traceId = await waitFor("the shell's banner", () => /ready ([0-9a-f]{32})/.exec(shell.stdout())?.[1]);
  const active = await waitFor("the session to be active in the tracker", async () => {
    const { sessions } = await storedSessions(tracker.store);
    return sessions.length === 1 && sessions[0]?.status === "active" && sessions[0];
  });
  assert.equal(active.trace_id, traceId);
  assert.equal(active.component_name, "fixture");
  assert.equal(active.pid, shell.child.pid);
  shell.child.kill("SIGTERM");
  const exit = await shell.exited;
  assert.equal(exit.signal, "SIGTERM", "the program still dies of SIGTERM");
  const ended = await waitFor("the session to be ended", async () => {
    const { sessions } = await storedSessions(tracker.store);
    return sessions[0]?.status === "ended" && sessions[0];
  });
  assert.equal(ended.exit_reason, "sigterm");
  assert.equal(ended.session_id, active.session_id);
  assert.doesNotMatch(shell.stderr(), /warn|error/i, "nothing printed into the shell's terminal");
});

test("heartbeats: sent only because this tracker lists heartbeat_session, they keep the session's lease fresh", async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const h = harness(
    t,
    deliveryEnv(dir, {
      SESSION_BUDDY_URL: tracker.url,
      SESSION_BUDDY_SECRET: tracker.secret,
      SHELL_SESSIONS_HEARTBEAT_MS: "200",
    }),
  );
  const span = startSession(h.provider);
  const first = await waitFor(
    "the session in the store",
    async () => (await storedSessions(tracker.store)).sessions[0],
  );
  const later = await waitFor("a heartbeat to move last_seen_at", async () => {
    const s = (await storedSessions(tracker.store)).sessions[0];
    return s && s.last_seen_at > first.last_seen_at && s;
  });
  assert.equal(later.status, "active");
  const names = h.spans.getFinishedSpans().map((s) => s.name);
  assert.ok(names.includes("tools/call track_session_start"), names.join(", "));
  assert.ok(!names.includes("tools/call heartbeat_session"), "heartbeats are metrics, not spans");
  endSession(span);
  await waitFor("ended", async () => (await storedSessions(tracker.store)).sessions[0]?.status === "ended");
});

/**
 * A state dir, a real tracker, a proxy in front of it holding each answer
 * back `delayMs` (changeable later), and the delivery settings that send
 * through the proxy (with `extra`).
 */
async function slowTracker(t: { after(fn: () => unknown): void }, delayMs: number) {
  const dir = tempDir(t);
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const slow = await startDelayProxy(tracker.url, delayMs);
  t.after(() => slow.close());
  const env = (extra: NodeJS.ProcessEnv = {}) =>
    deliveryEnv(dir, { SESSION_BUDDY_URL: slow.url, SESSION_BUDDY_SECRET: tracker.secret, ...extra });
  return { dir, tracker, slow, env };
}

test("heartbeats against a tracker slower than their interval: one round at a time, never overlapping", async (t) => {
  // Every answer takes 300 ms; a heartbeat is due every 50 ms.
  const { tracker, slow, env } = await slowTracker(t, 300);
  const h = harness(
    t,
    env({
      SHELL_SESSIONS_HEARTBEAT_MS: "50",
    }),
  );
  const span = startSession(h.provider);
  const beats = await waitFor("four heartbeats through the proxy", () => {
    const found = slow.toolCalls.filter((c) => c.tool === "heartbeat_session");
    return found.length >= 4 && found;
  });
  const sorted = [...beats].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const [before, after] = [sorted[i - 1], sorted[i]] as [{ end: number }, { start: number }];
    assert.ok(after.start >= before.end, `heartbeat ${i + 1} started ${before.end - after.start} ms before ${i} ended`);
  }
  endSession(span);
  await waitFor("ended", async () => (await storedSessions(tracker.store)).sessions[0]?.status === "ended");
});

test("sessions are sent side by side against a slow tracker, each session's start before its end", async (t) => {
  // Every answer takes 300 ms: one event at a time would take 12 × 300 ms for six sessions.
  const { tracker, slow, env } = await slowTracker(t, 300);
  const h = harness(t, env());
  const spans = Array.from({ length: 6 }, () => startSession(h.provider));
  // Ended at once: each end is queued right behind its own start, which is still in flight.
  for (const span of spans) endSession(span);
  const { sessions } = await waitFor("six sessions ended in the store", async () => {
    const found = await storedSessions(tracker.store);
    return found.sessions.length === 6 && found.sessions.every((s) => s.status === "ended") && found;
  });
  assert.deepEqual(sessions.map((s) => s.trace_id).sort(), spans.map((s) => s.spanContext().traceId).sort());
  assert.ok(slow.peakInFlight > 1, `calls in flight at once: ${slow.peakInFlight}`);
  assert.ok(slow.peakInFlight <= DEFAULTS.sendConcurrency, `calls in flight at once: ${slow.peakInFlight}`);
  assert.deepEqual(h.warnings, []);
});

test("a burst beyond the send concurrency goes out in batches to a tracker that lists the batch tool: fewer calls, each session recorded once", async (t) => {
  // Every answer takes 100 ms, so the burst's events are ready together while the free sends are few.
  const { dir, tracker, slow, env } = await slowTracker(t, 100);
  const h = harness(t, env());
  // The first session's connect is where the exporter learns that this tracker takes batches.
  const first = startSession(h.provider);
  await trackerSessionId(first, "the first start acknowledged");
  const burst = Array.from({ length: 40 }, () => startSession(h.provider));
  for (const span of burst) endSession(span);
  endSession(first);
  const spans = [first, ...burst];
  const { sessions, events } = await waitFor("41 sessions ended in the store", async () => {
    const found = await storedSessions(tracker.store);
    return found.sessions.length === 41 && found.sessions.every((s) => s.status === "ended") && found;
  });
  assert.deepEqual(sessions.map((s) => s.trace_id).sort(), spans.map((s) => s.spanContext().traceId).sort());
  assert.equal(events, 82, "each start and each end logged once");
  // The proxy books a call once it has passed the answer on; the exporter settles its books after that.
  await waitFor("every event settled", () => h.processor.delivery.pending === 0);
  const calls = slow.toolCalls.map((c) => c.tool);
  const batches = calls.filter((tool) => tool === "track_session_events").length;
  assert.ok(batches > 0, `calls: ${calls.join(", ")}`);
  assert.ok(calls.length <= 41, `82 events took ${calls.length} calls`);
  assert.ok(slow.peakInFlight <= DEFAULTS.sendConcurrency, `calls in flight at once: ${slow.peakInFlight}`);
  // Each batch has one client span, linked to the span of every session it carried.
  const batchSpans = h.spans.getFinishedSpans().filter((s) => s.name === "tools/call track_session_events");
  assert.equal(batchSpans.length, batches);
  const linked = new Set(batchSpans.flatMap((s) => s.links.map((l) => l.context.traceId)));
  assert.ok(linked.size > 1 && [...linked].every((id) => spans.some((s) => s.spanContext().traceId === id)));
  assert.equal(spoolStats(dir), undefined, "nothing had to be spooled");
  assert.deepEqual(h.warnings, []);
});

test("a tracker slower than half the call timeout: the connect and each call have their own deadline, and every event arrives", async (t) => {
  // Each answer takes 600 ms of a 1,000 ms timeout. A connect is two answers (era probe, tool listing), so a
  // deadline shared by the connect and the call it was for ran out on every attempt.
  const { dir, tracker, slow, env } = await slowTracker(t, 600);
  const h = harness(
    t,
    env({
      SHELL_SESSIONS_CALL_TIMEOUT_MS: "1000",
    }),
  );
  const span = startSession(h.provider);
  await trackerSessionId(span, "the start acknowledged");
  endSession(span);
  await waitFor("the session ended in the store", async () => {
    const { sessions } = await storedSessions(tracker.store);
    return sessions[0]?.status === "ended";
  });
  // The proxy books a call once it has passed the answer on.
  await waitFor("the end's answer passed on", () => slow.toolCalls.some((c) => c.tool === "track_session_end"));
  const calls = slow.toolCalls.map((c) => c.tool);
  assert.deepEqual(calls, ["track_session_start", "track_session_end"], "each event sent once, none timed out");
  assert.equal(spoolStats(dir), undefined, "nothing had to be spooled");
});

test("a program that runs on after its last shell closed: an end slower than the exit grace is still sent live, never parked in the spool", async (t) => {
  const { dir, tracker, slow, env } = await slowTracker(t, 0);
  const h = harness(
    t,
    env({
      SHELL_SESSIONS_EXIT_GRACE_MS: "200",
      // The background pass would come only in ten minutes, past this test's deadline.
      SHELL_SESSIONS_SPOOL_RETRY_MS: "600000",
    }),
  );
  const span = startSession(h.provider);
  await trackerSessionId(span, "the start acknowledged");
  // The end's answer comes well after the exit grace. This process runs on (the test runner), so the call is
  // neither cut off nor moved to the spool: its answer arrives and the session ends.
  slow.delayMs = 800;
  endSession(span);
  await waitFor("the session ended in the store", async () => {
    const { sessions } = await storedSessions(tracker.store);
    return sessions[0]?.status === "ended";
  });
  // The proxy books a call once it has passed the answer on.
  await waitFor("the end's answer passed on", () => slow.toolCalls.some((c) => c.tool === "track_session_end"));
  assert.equal(slow.toolCalls.filter((c) => c.tool === "track_session_end").length, 1, "the end was sent once");
  assert.equal(spoolStats(dir), undefined, "no spool was written");
});

test("a program that runs on, whose first connect outlasts the exit grace: the connect is given up at the grace, and its events go out from the spool", async (t) => {
  // The first connect probes the tracker's era; each answer takes 400 ms, twice the grace.
  const { dir, tracker, slow, env } = await slowTracker(t, 400);
  const h = harness(t, env({ SHELL_SESSIONS_EXIT_GRACE_MS: "200", SHELL_SESSIONS_SPOOL_RETRY_MS: "1500" }));
  const span = startSession(h.provider);
  endSession(span);
  // Given up at the end of the grace (the program might be leaving, and the SDK's probe would hold it) ...
  await waitFor("the start and end spooled", () => spoolStats(dir)?.pending === 2);
  assert.ok(
    h.logs.some((line) => /connect was given up: the program is leaving/.test(line)),
    h.logs.join(""),
  );
  // ... and sent on the spool's next pass, since this process runs on.
  await waitFor("the session ended in the store", async () => {
    const { sessions } = await storedSessions(tracker.store);
    return sessions[0]?.status === "ended";
  });
  await waitFor("the spool emptied", () => spoolStats(dir)?.pending === 0);
  assert.ok(slow.received > 0);
  assert.deepEqual(h.warnings, []);
});

test("credentials: SESSION_BUDDY_TOKEN as given, or the secret the local tracker generated in the state dir", async (t) => {
  // A tracker started with no secret configured generates one into its state dir, as Jupyter does with its token.
  const tracker = await startTracker({ secret: null });
  t.after(() => tracker.stop());
  const local = harness(t, deliveryEnv(tracker.stateDir, { SESSION_BUDDY_URL: tracker.url }));
  const a = startSession(local.provider);
  await trackerSessionId(a, "recorded with the local tracker's secret");
  endSession(a);
  const secret = readFileSync(join(tracker.stateDir, "secret"), "utf8").trim();
  const token = await mintToken({ secret, component: "mahavishnu" });
  const dir = tempDir(t);
  const given = harness(t, deliveryEnv(dir, { SESSION_BUDDY_URL: tracker.url, SESSION_BUDDY_TOKEN: token }));
  const b = startSession(given.provider);
  await trackerSessionId(b, "recorded with the given token");
  endSession(b);
  await waitFor("both ended", async () => {
    const { sessions } = await storedSessions(tracker.store);
    return sessions.length === 2 && sessions.every((s) => s.status === "ended");
  });
  assert.deepEqual([...local.warnings, ...given.warnings], []);
});

test("a Bearer token the tracker refuses (HTTP 401): rejected, logged once, kept; drained once the secret is right", async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const env = deliveryEnv(dir, { SESSION_BUDDY_URL: tracker.url, SESSION_BUDDY_SECRET: randomSecret() });
  const h = harness(t, env);
  endSession(startSession(h.provider));
  endSession(startSession(h.provider));
  await waitFor("the rejection to be logged", () => h.warnings.find((w) => /refused our credentials/.test(w)));
  await h.provider.shutdown();
  const rejections = h.warnings.filter((w) => /refused our credentials/.test(w));
  assert.equal(rejections.length, 1, "logged once");
  assert.match(
    rejections[0] ?? "",
    /refused our credentials \(unauthenticated\): unauthenticated: token signature is invalid/,
  );
  assert.doesNotMatch(rejections[0] ?? "", /jsonrpc/, "the tracker's words, not its raw JSON body");
  assert.equal((await storedSessions(tracker.store)).sessions.length, 0, "nothing was written");
  const fixed = await runCli(["spool", "drain"], {
    SHELL_SESSIONS_STATE_DIR: dir,
    SESSION_BUDDY_URL: tracker.url,
    SESSION_BUDDY_SECRET: tracker.secret,
  });
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.match(fixed.stdout, /delivered 4, rejected 0, still waiting 0/);
  const { sessions } = await storedSessions(tracker.store);
  assert.equal(sessions.length, 2);
  assert.ok(sessions.every((s) => s.status === "ended"));
});
