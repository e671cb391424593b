/**
 * The layers of delivery, each alone with a fake of the layer below: the
 * queue with a fake sender, the heartbeats with a fake beat, the drainer
 * with a fake sender over a real spool file.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { buildEndEvent, buildStartEvent } from "../../src/contract/index.ts";
import { Drainer } from "../../src/exporter/drainer.ts";
import { DeliveryFailure } from "../../src/exporter/errors.ts";
import type { EndPayload, StartPayload } from "../../src/exporter/events.ts";
import { Heartbeats } from "../../src/exporter/heartbeats.ts";
import { type Delivered, type Job, newJob, type Phase, type SessionRef } from "../../src/exporter/jobs.ts";
import { DeliveryMetrics } from "../../src/exporter/metrics.ts";
import { resolveDeliveryOptions } from "../../src/exporter/options.ts";
import { SessionQueue } from "../../src/exporter/queue.ts";
import { type Connection, Sender } from "../../src/exporter/sender.ts";
import { SpoolAccess } from "../../src/exporter/spool-access.ts";
import { createLogger } from "../../src/log.ts";
import { tempDir, waitFor } from "./support.ts";

const log = createLogger("silent");

function session(name: string): SessionRef {
  return {
    startEventId: randomUUID(),
    component: name,
    localSessionId: undefined,
    traceId: randomUUID().replaceAll("-", ""),
    spanId: randomUUID().replaceAll("-", "").slice(0, 16),
    traceFlags: 1,
    traceState: undefined,
    baggage: undefined,
    span: undefined,
    trackerSessionId: undefined,
    start: "memory",
    ended: false,
  };
}

// Real payloads, built as the exporter builds them: the drainer checks spooled ones against the contract.
const startPayload = (s: SessionRef) => (): StartPayload =>
  buildStartEvent({ eventId: s.startEventId, componentName: s.component, timestamp: Date.now() });
const endPayload = (id: string) => (): EndPayload => {
  const { session_id: _pending, ...rest } = buildEndEvent({
    sessionId: "pending",
    timestamp: Date.now(),
    metadata: { event_id: id, exit_reason: "exit_command" },
  });
  return rest;
};

/** A sender whose calls stay open until the test answers them. */
function fakeSender() {
  const calls: { job: Job; answer: (d: Delivered) => void }[] = [];
  /** The events of each send that carried more than one. */
  const batches: Job[][] = [];
  let inFlight = 0;
  let peak = 0;
  const sender = {
    calls,
    batches,
    peak: () => peak,
    deliver: (jobs: Job[]) => {
      if (jobs.length > 1) batches.push(jobs);
      return Promise.all(jobs.map((job) => sender.one(job)));
    },
    one: (job: Job) =>
      new Promise<Delivered>((resolve) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        calls.push({
          job,
          answer: (d) => {
            inFlight--;
            resolve(d);
          },
        });
      }),
  };
  return sender;
}

function queueWith(
  sender: ReturnType<typeof fakeSender>,
  options: { max?: number; concurrency?: number; batchSize?: number } = {},
) {
  const settled: { job: Job; outcome: Delivered }[] = [];
  const spooled: { ids: string[]; why: string }[] = [];
  let phase: Phase = "running";
  const queue = new SessionQueue({
    max: options.max ?? 100,
    concurrency: options.concurrency ?? 8,
    log,
    phase: () => phase,
    deliver: sender.deliver,
    batchSize: () => options.batchSize ?? 1,
    settle: (job, outcome) => settled.push({ job, outcome }),
    spool: (jobs, why) => spooled.push({ ids: jobs.map((j) => j.eventId), why }),
    onIdle: () => {},
  });
  return { queue, settled, spooled, setPhase: (p: Phase) => (phase = p) };
}

test("queue: sessions go out at once up to the concurrency, a session's end only after its start settled", async () => {
  const sender = fakeSender();
  const { queue, settled } = queueWith(sender, { concurrency: 2 });
  const [a, b, c] = [session("a"), session("b"), session("c")];
  for (const s of [a, b, c]) queue.push(newJob("start", s.startEventId, s, startPayload(s), 0));
  const aEnd = randomUUID();
  queue.push(newJob("end", aEnd, a, endPayload(aEnd), 0));
  await waitFor("two sends in flight", () => sender.calls.length === 2);
  assert.deepEqual(
    sender.calls.map((x) => x.job.session.component),
    ["a", "b"],
    "oldest first, at most the concurrency",
  );
  assert.equal(queue.owns(aEnd), true, "the queued end is this process's own");
  sender.calls[0]?.answer({ ok: true, trackerSessionId: "sess_a" });
  await waitFor("the next send", () => sender.calls.length === 3);
  assert.equal(sender.calls[2]?.job.session.component, "c", "a's end waits behind nothing but its own start");
  sender.calls[1]?.answer({ ok: true, trackerSessionId: "sess_b" });
  await waitFor("a's end sent", () => sender.calls.length === 4);
  assert.equal(sender.calls[3]?.job.eventId, aEnd);
  for (const call of sender.calls.slice(2)) call.answer({ ok: true });
  await waitFor("all settled", () => settled.length === 4);
  assert.equal(sender.peak(), 2, "never more than the concurrency in flight");
  assert.equal(queue.length, 0);
  assert.equal(queue.owns(aEnd), false);
});

test("queue: a burst beyond the free sends is shared out over them, one component a send; alone, each goes by itself", async () => {
  const burst = (component: (i: number) => string) =>
    Array.from({ length: 7 }, (_, i) => ({ ...session(`s${i}`), component: component(i) }));
  const pushAll = (queue: SessionQueue, sessions: SessionRef[]) => {
    for (const s of sessions) queue.push(newJob("start", s.startEventId, s, startPayload(s), 0));
  };

  // The tracker takes one event a call: two sends, one event each; the rest wait their turn.
  const single = fakeSender();
  pushAll(
    queueWith(single, { concurrency: 2 }).queue,
    burst(() => "alpha"),
  );
  await waitFor("two sends", () => single.calls.length === 2);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(single.calls.length, 2);
  assert.equal(single.batches.length, 0);

  // Up to four a call: the seven share the two free sends, oldest first, and all settle.
  const batched = fakeSender();
  const { queue, settled } = queueWith(batched, { concurrency: 2, batchSize: 4 });
  const sessions = burst(() => "alpha");
  pushAll(queue, sessions);
  await waitFor("seven events in flight", () => batched.calls.length === 7);
  assert.deepEqual(
    batched.batches.map((b) => b.map((j) => j.session)),
    [sessions.slice(0, 4), sessions.slice(4)],
  );
  for (const call of batched.calls) call.answer({ ok: true, trackerSessionId: `sess_${call.job.eventId}` });
  await waitFor("all settled", () => settled.length === 7 && queue.length === 0);

  // Two components never share a send (each has its own credential).
  const mixed = fakeSender();
  pushAll(
    queueWith(mixed, { concurrency: 2, batchSize: 4 }).queue,
    burst((i) => (i % 2 === 0 ? "alpha" : "beta")),
  );
  await waitFor("seven events in flight", () => mixed.calls.length === 7);
  assert.deepEqual(
    mixed.batches.map((b) => [b.length, [...new Set(b.map((j) => j.session.component))]]),
    [
      [4, ["alpha"]],
      [3, ["beta"]],
    ],
  );
});

test("queue: a full queue and an end whose start is in the spool both go to the spool", async () => {
  const sender = fakeSender();
  const { queue, spooled } = queueWith(sender, { max: 1 });
  const [a, b] = [session("a"), session("b")];
  queue.push(newJob("start", a.startEventId, a, startPayload(a), 0));
  queue.push(newJob("start", b.startEventId, b, startPayload(b), 0));
  assert.deepEqual(spooled, [{ ids: [b.startEventId], why: "the in-memory queue holds its maximum of 1 events" }]);
  await waitFor("a's start in flight", () => sender.calls.length === 1);
  a.start = "spool";
  const aEnd = randomUUID();
  sender.calls[0]?.answer({ ok: false, failure: new DeliveryFailure("transient", "econnrefused", "down") });
  await waitFor("the queue empty", () => queue.length === 0);
  queue.push(newJob("end", aEnd, a, endPayload(aEnd), 0));
  await waitFor("a's end spooled", () => spooled.length === 2);
  assert.deepEqual(spooled[1], { ids: [aEnd], why: "its start is waiting in the spool" });
  assert.equal(sender.calls.length, 1, "the end was never sent ahead of its start");
});

test("queue: a flush waits for sends in flight and no longer; leaving ends the wait", async () => {
  const sender = fakeSender();
  const { queue, setPhase } = queueWith(sender);
  const a = session("a");
  queue.push(newJob("start", a.startEventId, a, startPayload(a), 0));
  await waitFor("in flight", () => sender.calls.length === 1);
  let flushed = false;
  const flush = queue.flushed(60_000).then(() => {
    flushed = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(flushed, false, "still waiting while the send is in flight");
  sender.calls[0]?.answer({ ok: true, trackerSessionId: "sess_a" });
  await flush;
  queue.push(newJob("start", randomUUID(), session("b"), startPayload(session("b")), 0));
  await waitFor("b in flight", () => sender.calls.length === 2);
  const second = queue.flushed(60_000);
  setPhase("exiting");
  queue.wakeFlushWaiters();
  await second;
});

/** Heartbeats over three live sessions, counting rounds (each round asks for the live sessions once). */
function beating(t: { after(fn: () => void): void }, opts: { supports?: boolean; halted?: boolean } = {}) {
  const beaten: string[] = [];
  let rounds = 0;
  const sessions = [session("a"), session("b"), session("c")];
  const heartbeats = new Heartbeats({
    intervalMs: 2,
    live: () => {
      rounds++;
      return sessions;
    },
    halted: () => opts.halted === true,
    beat: async (s) => {
      beaten.push(s.component);
      return opts.supports ?? true;
    },
    onError: (error) => assert.fail(String(error)),
  });
  t.after(() => heartbeats.stop());
  heartbeats.ensure();
  return { beaten, rounds: () => rounds, heartbeats };
}

test("heartbeats: each round beats every live session in turn", async (t) => {
  const x = beating(t);
  // Rounds never overlap: once the third starts, the first two are complete.
  await waitFor("three rounds", () => x.rounds() >= 3);
  x.heartbeats.stop();
  assert.deepEqual(x.beaten.slice(0, 6), ["a", "b", "c", "a", "b", "c"]);
});

test("heartbeats: a tracker without the tool ends each round at its first session; halted, none is sent", async (t) => {
  const unsupported = beating(t, { supports: false });
  await waitFor("three rounds", () => unsupported.rounds() >= 3);
  unsupported.heartbeats.stop();
  assert.ok(unsupported.beaten.length >= 2);
  assert.ok(
    unsupported.beaten.every((c) => c === "a"),
    unsupported.beaten.join(","),
  );
  const halted = beating(t, { halted: true });
  await waitFor("three rounds", () => halted.rounds() >= 3);
  assert.deepEqual(halted.beaten, []);
});

/** A spool in a fresh state dir, and what a drainer of it needs besides its sender. */
function drainerBase(t: { after(fn: () => void): void }) {
  const resolved = resolveDeliveryOptions({ SHELL_SESSIONS_STATE_DIR: tempDir(t) });
  assert.ok(resolved.enabled);
  const { options } = resolved;
  const metrics = new DeliveryMetrics({ circuitState: () => "closed", spoolDepth: () => 0 });
  const spool = new SpoolAccess({ options, log, metrics });
  t.after(() => spool.close());
  // A program with no live sessions, never halted or parked.
  const base = {
    options,
    log,
    spool,
    background: false,
    epoch: () => 0,
    halted: () => false,
    owns: () => false,
    liveSession: () => undefined,
    adopt: () => assert.fail("no live session here"),
  };
  return { spool, base };
}

test("drainer: a session blocked by a failure keeps its order; others go on; an end gets the id its start received", async (t) => {
  const { spool, base } = drainerBase(t);
  const [a, b] = [session("a"), session("b")];
  const aEnd = randomUUID();
  const bEnd = randomUUID();
  const jobs = [
    newJob("start", a.startEventId, a, startPayload(a), 0),
    newJob("start", b.startEventId, b, startPayload(b), 0),
    newJob("end", aEnd, a, endPayload(aEnd), 0),
    newJob("end", bEnd, b, endPayload(bEnd), 0),
  ];
  spool.write(jobs, "test");
  const sent: string[] = [];
  const drainer = new Drainer({
    ...base,
    deliver: async ([job, ...more]) => {
      assert.ok(job !== undefined && more.length === 0, "one event a call here");
      sent.push(`${job.session.component}:${job.kind}:${job.session.trackerSessionId ?? "-"}`);
      if (job.session.component === "a") {
        return [{ ok: false, failure: new DeliveryFailure("transient", "econnrefused", "a is refused") }];
      }
      return [{ ok: true, ...(job.kind === "start" ? { trackerSessionId: "sess_b" } : {}) }];
    },
    batchSize: () => 1,
  });
  const summary = await drainer.drain({ now: true });
  assert.deepEqual(sent, ["a:start:-", "b:start:-", "b:end:sess_b"], "a's end waits behind its failed start");
  assert.deepEqual(
    { delivered: summary.delivered, failed: summary.failed, waiting: summary.waiting, busy: summary.busy },
    { delivered: 2, failed: 1, waiting: 2, busy: false },
  );
});

test("drainer: where calls carry several events, a component's rows go together, one per session; ends after their starts", async (t) => {
  const { spool, base } = drainerBase(t);
  const sessions = ["s1", "s2", "s3"].map((name) => ({ ...session(name), component: "alpha" }));
  const other = session("beta");
  const ends = sessions.map(() => randomUUID());
  spool.write(
    [
      ...sessions.map((s) => newJob("start", s.startEventId, s, startPayload(s), 0)),
      newJob("start", other.startEventId, other, startPayload(other), 0),
      ...sessions.map((s, i) => newJob("end", ends[i] as string, s, endPayload(ends[i] as string), 0)),
    ],
    "test",
  );
  const sends: string[][] = [];
  const answer = (job: Job): Delivered => ({
    ok: true,
    ...(job.kind === "start" ? { trackerSessionId: `sess_${job.eventId.slice(0, 8)}` } : {}),
  });
  const describe = (job: Job) => `${job.kind}:${job.session.trackerSessionId ?? "-"}`;
  const drainer = new Drainer({
    ...base,
    deliver: async (jobs) => {
      sends.push(jobs.map(describe));
      return jobs.map(answer);
    },
    batchSize: () => 4,
  });
  const summary = await drainer.drain({ now: true });
  const id = (s: SessionRef) => `sess_${s.startEventId.slice(0, 8)}`;
  assert.deepEqual(sends, [["start:-", "start:-", "start:-"], ["start:-"], sessions.map((s) => `end:${id(s)}`)]);
  assert.deepEqual({ delivered: summary.delivered, waiting: summary.waiting }, { delivered: 7, waiting: 0 });
});

/** A sender over a fake connection that answers each call with the next of `answers`. */
function senderWith(answers: (() => unknown)[], env: NodeJS.ProcessEnv = {}, { batch = false } = {}) {
  const resolved = resolveDeliveryOptions({
    SESSION_BUDDY_URL: "http://127.0.0.1:9/mcp",
    SESSION_BUDDY_TOKEN: "a-ready-token",
    SHELL_SESSIONS_BREAKER_FAILURES: "3",
    ...env,
  });
  assert.ok(resolved.enabled);
  const options = { ...resolved.options, retryBaseDelayMs: 1, retryMaxDelayMs: 2 };
  const calls: { tool: string; args: Record<string, unknown> }[] = [];
  const connection: Connection = {
    callTool: async (tool: string, args: Record<string, unknown>) => {
      calls.push({ tool, args });
      const next = answers.shift();
      if (!next) throw new Error("no answer scripted");
      return next() as Awaited<ReturnType<Connection["callTool"]>>;
    },
    supports: async (tool) => tool !== "track_session_events" || batch,
    hasTool: (tool) => tool !== "track_session_events" || batch,
    reset: () => {},
    close: () => {},
  };
  const metrics = new DeliveryMetrics({ circuitState: () => "closed", spoolDepth: () => 0 });
  const sender = new Sender({ options, log, metrics, connect: () => connection });
  return { sender, calls };
}

const tracked = (id: string) => () => ({ structuredContent: { status: "tracked", session_id: id }, content: [] });
const refused = () => {
  throw new DeliveryFailure("transient", "econnrefused", "connection refused");
};

test("sender: a transient failure is retried, the token goes in the arguments, the start's id comes back", async (t) => {
  const { sender, calls } = senderWith([refused, tracked("sess_1")]);
  t.after(() => sender.shutdown());
  const a = session("a");
  const outcome = await sender.deliver(newJob("start", a.startEventId, a, startPayload(a), 0), () => false);
  assert.deepEqual(outcome, { ok: true, trackerSessionId: "sess_1" });
  assert.equal(calls.length, 2);
  assert.equal(calls[1]?.tool, "track_session_start");
  assert.equal(calls[1]?.args.token, "a-ready-token");
  assert.equal(calls[1]?.args.event_id, a.startEventId);
});

test("sender: an answer of no is not retried; consecutive failures open the circuit and then nothing is called", async (t) => {
  const no = () => ({
    structuredContent: { status: "error", session_id: null, error: "bad", code: "invalid_argument" },
  });
  const { sender, calls } = senderWith([no, refused, refused, refused, tracked("never")], {
    SHELL_SESSIONS_RETRY_ATTEMPTS: "3",
  });
  t.after(() => sender.shutdown());
  const a = session("a");
  const job = () => newJob("start", a.startEventId, a, startPayload(a), 0);
  const rejected = await sender.deliver(job(), () => false);
  assert.equal(rejected.ok, false);
  assert.equal(!rejected.ok && rejected.failure.kind, "rejected");
  assert.equal(calls.length, 1, "not retried");
  const failed = await sender.deliver(job(), () => false);
  assert.equal(!failed.ok && failed.failure.kind, "transient", "three attempts, each refused");
  assert.equal(sender.circuit, "open", "the third failure in a row opened it");
  assert.equal(calls.length, 4);
  const shortCircuited = await sender.deliver(job(), () => false);
  assert.equal(!shortCircuited.ok && shortCircuited.failure.kind, "short_circuited");
  assert.equal(calls.length, 4, "an open circuit calls nothing");
});

test("sender: a stopped job is not sent at all", async (t) => {
  const { sender, calls } = senderWith([tracked("sess_1")]);
  t.after(() => sender.shutdown());
  const a = session("a");
  const outcome = await sender.deliver(newJob("start", a.startEventId, a, startPayload(a), 0), () => true);
  assert.equal(!outcome.ok && outcome.failure.kind, "aborted");
  assert.equal(calls.length, 0);
});

test("sender: once the tracker lists its batch tool, events share a call; each is answered alone, only the transient ones go again", async (t) => {
  const item = (result: Record<string, unknown>) => result;
  const batchOf =
    (...results: Record<string, unknown>[]) =>
    () => ({
      structuredContent: { status: "ok", results },
      content: [],
    });
  const unavailable = { status: "error", session_id: null, error: "store busy", code: "unavailable" };
  const { sender, calls } = senderWith(
    [
      tracked("sess_0"),
      batchOf(
        item({ status: "tracked", session_id: "sess_a" }),
        item({ status: "error", session_id: null, error: "bad pid", code: "invalid_argument" }),
        item(unavailable),
        item({ status: "ended", session_id: "sess_0" }),
      ),
      batchOf(item({ status: "tracked", session_id: "sess_c" })),
    ],
    {},
    { batch: true },
  );
  t.after(() => sender.shutdown());
  assert.equal(sender.batchSize, 1, "unknown until a connect has listed the tools");
  const first = session("first");
  assert.deepEqual(
    await sender.deliver(newJob("start", first.startEventId, first, startPayload(first), 0), () => false),
    {
      ok: true,
      trackerSessionId: "sess_0",
    },
  );
  assert.ok(sender.batchSize > 1);
  const [a, b, c] = [session("a"), session("b"), session("c")];
  first.trackerSessionId = "sess_0";
  const firstEnd = randomUUID();
  const jobs = [
    ...[a, b, c].map((s) => newJob("start", s.startEventId, s, startPayload(s), 0)),
    newJob("end", firstEnd, first, endPayload(firstEnd), 0),
  ];
  const outcomes = await sender.deliverMany(jobs, () => false);
  assert.deepEqual(
    outcomes.map((o) => (o.ok ? `ok:${o.trackerSessionId ?? "-"}` : `${o.failure.kind}:${o.failure.errorType}`)),
    ["ok:sess_a", "rejected:invalid_argument", "ok:sess_c", "ok:-"],
  );
  assert.deepEqual(
    calls.map((call) => call.tool),
    ["track_session_start", "track_session_events", "track_session_events"],
  );
  const events = (i: number) => calls[i]?.args.events as Record<string, unknown>[];
  assert.equal(calls[1]?.args.token, "a-ready-token");
  assert.deepEqual(
    events(1).map((e) => [e.event_type, e.event_id ?? e.session_id]),
    [
      ["session_start", a.startEventId],
      ["session_start", b.startEventId],
      ["session_start", c.startEventId],
      ["session_end", "sess_0"],
    ],
  );
  assert.deepEqual(
    events(2).map((e) => e.event_id),
    [c.startEventId],
    "only the event the tracker could not store goes again",
  );
});

test("sender: a tracker without the batch tool gets one call an event", async (t) => {
  const { sender, calls } = senderWith([tracked("sess_0"), tracked("sess_a"), tracked("sess_b")]);
  t.after(() => sender.shutdown());
  const first = session("first");
  await sender.deliver(newJob("start", first.startEventId, first, startPayload(first), 0), () => false);
  assert.equal(sender.batchSize, 1);
  const [a, b] = [session("a"), session("b")];
  const outcomes = await sender.deliverMany(
    [a, b].map((s) => newJob("start", s.startEventId, s, startPayload(s), 0)),
    () => false,
  );
  assert.deepEqual(
    outcomes.map((o) => o.ok && o.trackerSessionId),
    ["sess_a", "sess_b"],
  );
  assert.deepEqual(
    calls.map((call) => call.tool),
    ["track_session_start", "track_session_start", "track_session_start"],
  );
});
