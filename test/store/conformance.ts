/**
 * What every SessionStore must do, run against each implementation on a real
 * database. `factory` returns a fresh, migrated, empty store per test, plus
 * raw access to its tables for checking what was (not) written.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { test } from "node:test";
import { ContractError } from "../../src/contract/errors.ts";
import { LIST_LIMIT_DEFAULT, type SessionRecord } from "../../src/contract/schemas.ts";
import type { SessionStore } from "../../src/store/types.ts";
import { at, endEvent, heartbeat, startEvent, T0 } from "./fixtures.ts";

export interface StoreUnderTest {
  store: SessionStore;
  /** Every row of `sessions` and `events`, as the database holds it, serialised. */
  rawText(): Promise<string>;
  /** The event log's event_id column. */
  eventIds(): Promise<string[]>;
}

export type StoreFactory = () => Promise<StoreUnderTest>;

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

async function walk(store: SessionStore, query: Parameters<SessionStore["listSessions"]>[0]) {
  const seen: SessionRecord[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.listSessions({ ...query, ...(cursor !== undefined ? { cursor } : {}) });
    seen.push(...page.sessions);
    pages++;
    assert.ok(pages <= 100, "paging does not terminate");
    if (page.nextCursor === null) return { seen, pages };
    cursor = page.nextCursor;
  }
}

async function assertContractError(promise: Promise<unknown>, field: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ContractError, `expected a ContractError, got ${String(error)}`);
    assert.equal(error.code, "invalid_argument");
    assert.match(error.message, field);
    return true;
  });
}

export function storeConformance(factory: StoreFactory): void {
  const open = async (t: { after(fn: () => Promise<void>): void }) => {
    const under = await factory();
    t.after(() => under.store.close());
    return under;
  };

  test("start records an active session from the event: shell times, server lease, trace id, metadata", async (t) => {
    const { store } = await open(t);
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const event = startEvent({
      timestamp: "2026-01-31T13:30:00.123456+01:30",
      metadata: { trace_id: traceId, component_version: "1.2.3", adapters: ["a", "b"], nested: { n: 1.5 } },
    });
    const { session, created } = await store.recordStart(event, at(5));
    assert.equal(created, true);
    assert.match(session.session_id, /^sess_[A-Za-z0-9_-]{22}$/);
    assert.equal(session.status, "active");
    assert.equal(session.started_at, "2026-01-31T12:00:00.123Z", "the event's own time, in UTC, to the millisecond");
    assert.equal(session.last_seen_at, at(5).toISOString(), "the lease runs on the server's clock");
    assert.equal(session.trace_id, traceId);
    assert.equal(session.start_event_id, event.event_id);
    assert.deepEqual(
      {
        component_name: session.component_name,
        shell_type: session.shell_type,
        hostname: session.hostname,
        pid: session.pid,
        username: session.username,
        home: session.home,
        cwd: session.cwd,
        platform: session.platform,
        python_version: session.python_version,
      },
      {
        component_name: "mahavishnu",
        shell_type: "MahavishnuShell",
        hostname: "app-1.example.com",
        pid: 4242,
        username: "ops",
        home: "/home/ops",
        cwd: "/srv/app",
        platform: "linux",
        python_version: "n/a (node v24.0.0)",
      },
    );
    assert.deepEqual(session.metadata, event.metadata);
    assert.equal(session.ended_at, null);
    assert.equal(session.duration_seconds, null);
    assert.equal(session.exit_reason, null);
    assert.equal(session.end_metadata, null);
    assert.deepEqual(await store.getSession(session.session_id), session);
    assert.equal(await store.countEvents(), 1);
    assert.equal(await store.countActive(), 1);
  });

  test("a start time without a zone is UTC", async (t) => {
    const { store } = await open(t);
    const { session } = await store.recordStart(startEvent({ timestamp: "2026-01-31T08:15:00" }), T0);
    assert.equal(session.started_at, "2026-01-31T08:15:00.000Z");
  });

  test("trace_id is taken from trace_id or correlation_id only when it is a valid W3C trace id", async (t) => {
    const { store } = await open(t);
    const valid = "0af7651916cd43dd8448eb211c80319c";
    const cases: [Record<string, unknown>, string | null][] = [
      [{ correlation_id: valid }, valid],
      [{ trace_id: "not-a-trace-id", correlation_id: valid }, valid],
      [{ trace_id: valid.toUpperCase() }, null],
      [{ trace_id: valid.slice(1) }, null],
      [{ trace_id: "0".repeat(32) }, null],
      [{ trace_id: 12345 }, null],
      [{}, null],
    ];
    for (const [metadata, expected] of cases) {
      const { session } = await store.recordStart(startEvent({ metadata }), T0);
      assert.equal(session.trace_id, expected, JSON.stringify(metadata));
    }
  });

  test("a replayed start returns the same session, says so, and writes nothing", async (t) => {
    const { store, rawText } = await open(t);
    const event = startEvent();
    const first = await store.recordStart(event, at(1));
    const before = await rawText();
    // The same event_id in another UUID spelling is the same event.
    const respelled = startEvent({ event_id: `{${event.event_id.toUpperCase()}}`, hostname: "elsewhere" });
    for (const replay of [event, respelled]) {
      const again = await store.recordStart(replay, at(30));
      assert.equal(again.created, false);
      assert.deepEqual(again.session, first.session, "the first start's row, untouched (lease included)");
    }
    assert.equal(await rawText(), before, "nothing written");
    assert.equal(await store.countEvents(), 1);
  });

  test("concurrent replays of one start on one store yield one session", async (t) => {
    const { store } = await open(t);
    const event = startEvent();
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => store.recordStart(event, T0)));
    assert.equal(new Set(outcomes.map((o) => o.session.session_id)).size, 1);
    assert.equal(outcomes.filter((o) => o.created).length, 1);
    assert.equal(await store.countEvents(), 1);
  });

  test("session ids are distinct for shells of one component started in the same second, and reveal neither", async (t) => {
    const { store } = await open(t);
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { session } = await store.recordStart(startEvent({ pid: 1000 + i }), T0);
      ids.add(session.session_id);
      assert.doesNotMatch(session.session_id, /mahavishnu|2026|20260131/i);
    }
    assert.equal(ids.size, 50);
  });

  test("end closes exactly the named session; duration is the session's own length, not handling time", async (t) => {
    const { store } = await open(t);
    const { session: a } = await store.recordStart(startEvent(), at(0));
    const { session: b } = await store.recordStart(startEvent(), at(0));
    const outcome = await store.recordEnd(
      endEvent(a.session_id, {
        timestamp: at(90.25).toISOString(),
        metadata: { exit_reason: "eof", duration_seconds: 1, lines: 12 },
      }),
      at(3600),
    );
    assert.equal(outcome.status, "ended");
    assert.ok(outcome.status === "ended");
    assert.equal(outcome.alreadyEnded, false);
    assert.equal(outcome.session.session_id, a.session_id);
    assert.equal(outcome.session.status, "ended");
    assert.equal(outcome.session.ended_at, at(90.25).toISOString());
    assert.equal(outcome.session.duration_seconds, 90.25, "ended_at − started_at, whatever the client claimed");
    assert.equal(outcome.session.exit_reason, "eof");
    assert.deepEqual(outcome.session.end_metadata, { exit_reason: "eof", duration_seconds: 1, lines: 12 });
    assert.equal(outcome.session.started_at, a.started_at);
    assert.deepEqual(await store.getSession(a.session_id), outcome.session);
    assert.equal((await store.getSession(b.session_id))?.status, "active", "the other session is untouched");
    assert.equal(await store.countEvents(), 3);
    assert.equal(await store.countActive(), 1);
  });

  test("an end stamped before its start (a clock step) gives duration 0, never negative", async (t) => {
    const { store } = await open(t);
    const { session } = await store.recordStart(startEvent({ timestamp: at(100).toISOString() }), at(100));
    const outcome = await store.recordEnd(endEvent(session.session_id, { timestamp: at(40).toISOString() }), at(101));
    assert.ok(outcome.status === "ended");
    assert.equal(outcome.session.duration_seconds, 0);
  });

  test("ending an ended session again changes nothing", async (t) => {
    const { store, rawText } = await open(t);
    const { session } = await store.recordStart(startEvent(), T0);
    const first = await store.recordEnd(endEvent(session.session_id), at(61));
    const before = await rawText();
    const again = await store.recordEnd(
      endEvent(session.session_id, {
        timestamp: at(500).toISOString(),
        metadata: { exit_reason: "sigterm", event_id: randomUUID() },
      }),
      at(501),
    );
    assert.ok(first.status === "ended" && again.status === "ended");
    assert.equal(again.alreadyEnded, true);
    assert.deepEqual(again.session, first.session);
    assert.equal(await rawText(), before);
    assert.equal(await store.countEvents(), 2);
  });

  test("ending an unknown session answers not_found and writes nothing", async (t) => {
    const { store, rawText } = await open(t);
    await store.recordStart(startEvent(), T0);
    const before = await rawText();
    assert.deepEqual(await store.recordEnd(endEvent("sess_AAAAAAAAAAAAAAAAAAAAAA"), at(1)), { status: "not_found" });
    assert.deepEqual(await store.recordEnd(endEvent("'; DROP TABLE sessions; --"), at(1)), { status: "not_found" });
    // Ids no database can hold as text are simply not there.
    for (const odd of ["sess_\u0000", "sess_\ud800", "🙂".repeat(2000)]) {
      assert.deepEqual(await store.recordEnd(endEvent(odd), at(1)), { status: "not_found" });
      assert.deepEqual(await store.recordHeartbeat(heartbeat(odd), at(1)), { status: "not_found" });
      assert.equal(await store.getSession(odd), undefined);
    }
    assert.equal(await rawText(), before);
  });

  test("exit_reason is the end's metadata.exit_reason when a string, capped; otherwise null", async (t) => {
    const { store } = await open(t);
    const cases: [Record<string, unknown>, string | null][] = [
      [{ exit_reason: "sighup" }, "sighup"],
      [{ exit_reason: "x".repeat(5000) }, "x".repeat(100)],
      [{ exit_reason: "🙂".repeat(150) }, "🙂".repeat(100)],
      [{ exit_reason: 3 }, null],
      [{}, null],
    ];
    for (const [metadata, expected] of cases) {
      const { session } = await store.recordStart(startEvent(), T0);
      const outcome = await store.recordEnd(endEvent(session.session_id, { metadata }), at(1));
      assert.ok(outcome.status === "ended");
      assert.equal(outcome.session.exit_reason, expected);
    }
  });

  test("the event log holds each event_id once: the client's end id when it is a UUID v4, else one end per session", async (t) => {
    const { store, eventIds, rawText } = await open(t);
    const start = startEvent();
    const { session: a } = await store.recordStart(start, T0);
    const { session: b } = await store.recordStart(startEvent(), T0);
    const { session: c } = await store.recordStart(startEvent(), T0);
    const endId = randomUUID();
    await store.recordEnd(endEvent(a.session_id, { metadata: { event_id: endId.toUpperCase() } }), at(1));
    const before = await rawText();
    // A confused client reusing another event's id, as an end or as a start: refused, nothing changes.
    await assertContractError(
      store.recordEnd(endEvent(b.session_id, { metadata: { event_id: endId } }), at(1)),
      /^metadata\.event_id: .*already used by another event/,
    );
    await assertContractError(
      store.recordEnd(endEvent(b.session_id, { metadata: { event_id: start.event_id } }), at(1)),
      /^metadata\.event_id: /,
    );
    await assertContractError(store.recordStart(startEvent({ event_id: endId }), at(1)), /^event_id: /);
    assert.equal(await rawText(), before, "nothing was written");
    assert.equal((await store.getSession(b.session_id))?.status, "active", "the session was not ended unlogged");
    await store.recordEnd(endEvent(c.session_id, { metadata: { event_id: "not-a-uuid" } }), at(1));
    await store.recordStart(start, at(2));
    const ids = await eventIds();
    assert.equal(ids.length, new Set(ids).size, "no event_id twice");
    assert.ok(ids.includes(start.event_id));
    assert.ok(ids.includes(endId), "the canonical form of the client's id");
    assert.ok(ids.includes(`end:${c.session_id}`));
    assert.equal(ids.length, 5);
  });

  test("writes made at once (a group commit on SQLite): one that fails after writing is undone alone, the others are stored", async (t) => {
    const { store, eventIds } = await open(t);
    const first = startEvent();
    const { session: a } = await store.recordStart(first, T0);
    const { session: b } = await store.recordStart(startEvent(), T0);
    const starts = Array.from({ length: 5 }, () => startEvent());
    // Issued in one turn: on SQLite these share one transaction. The end of `a` updates its row, then
    // finds its event id taken and fails: that update must not survive the others' commit.
    const outcomes = await Promise.allSettled([
      ...starts.slice(0, 2).map((event) => store.recordStart(event, at(1))),
      store.recordEnd(endEvent(a.session_id, { metadata: { event_id: first.event_id } }), at(1)),
      store.recordEnd(endEvent(b.session_id), at(1)),
      ...starts.slice(2).map((event) => store.recordStart(event, at(1))),
    ]);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ["fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled", "fulfilled", "fulfilled"],
    );
    assert.equal((await store.getSession(a.session_id))?.status, "active", "the failed end left its session alone");
    assert.equal((await store.getSession(b.session_id))?.status, "ended");
    const ids = await eventIds();
    for (const event of starts) assert.ok(ids.includes(event.event_id), "every other start is stored");
    assert.ok(ids.includes(`end:${b.session_id}`));
    assert.equal(ids.length, 2 + starts.length + 1);
  });

  test("a replayed start is found only within its own component; another component's event id is a clash that reveals nothing", async (t) => {
    const { store, rawText } = await open(t);
    const original = startEvent({ component_name: "alpha" });
    const { session } = await store.recordStart(original, T0);
    const before = await rawText();
    const clash = store.recordStart(startEvent({ component_name: "beta", event_id: original.event_id }), at(1));
    await assert.rejects(clash, (error: unknown) => {
      assert.ok(error instanceof ContractError);
      assert.equal(error.code, "invalid_argument");
      assert.match(error.message, /^event_id: /);
      assert.ok(!error.message.includes(session.session_id) && !error.message.includes("alpha"), "nothing about A");
      return true;
    });
    assert.equal(await rawText(), before, "nothing was written");
    const replay = await store.recordStart({ ...original, hostname: "elsewhere" }, at(2));
    assert.deepEqual([replay.created, replay.session.session_id], [false, session.session_id]);
  });

  test("an end stamped before its start is recorded, clamped to the start and flagged", async (t) => {
    const { store } = await open(t);
    const { session } = await store.recordStart(startEvent(), at(0));
    const early = new Date(T0.getTime() - 90_000).toISOString();
    const ended = await store.recordEnd(endEvent(session.session_id, { timestamp: early }), at(5));
    assert.ok(ended.status === "ended");
    assert.equal(ended.session.ended_at, session.started_at, "never before the start");
    assert.equal(ended.session.duration_seconds, 0);
    assert.equal(ended.session.end_metadata?.tracker_clamped_end_timestamp, early, "the time sent is kept");
    assert.equal(ended.session.exit_reason, "exit_command");
  });

  test("a session is found by its tracker id, its trace id or the shell's local session id", async (t) => {
    const { store } = await open(t);
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const localId = randomUUID();
    const { session } = await store.recordStart(
      startEvent({ metadata: { trace_id: traceId, local_session_id: localId } }),
      T0,
    );
    await store.recordStart(startEvent({ metadata: { trace_id: "a".repeat(32), local_session_id: randomUUID() } }), T0);
    for (const id of [session.session_id, traceId, traceId.toUpperCase(), localId, localId.toUpperCase()]) {
      const page = await store.listSessions({ id });
      assert.deepEqual(
        page.sessions.map((s) => s.session_id),
        [session.session_id],
        id,
      );
    }
    assert.deepEqual((await store.listSessions({ id: session.session_id.toUpperCase() })).sessions, []);
    assert.deepEqual((await store.listSessions({ id: "sess_nope" })).sessions, []);
    const filtered = await store.listSessions({ id: traceId, status: "ended" });
    assert.deepEqual(filtered.sessions, [], "combines with the other filters");
  });

  test("probeWrite commits a write (and leaves sessions and events alone)", async (t) => {
    const { store, rawText } = await open(t);
    const before = await rawText();
    await store.probeWrite("tracker", T0);
    await store.probeWrite("tracker", at(1));
    assert.equal(await rawText(), before);
  });

  test("a token is never stored: not from the start, not from the end, not nested in metadata", async (t) => {
    const { store, rawText } = await open(t);
    const secret = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl";
    const { session } = await store.recordStart(
      startEvent({ token: secret, metadata: { token: secret, nested: { Token: secret, keep: 1 } } }),
      T0,
    );
    await store.recordEnd(endEvent(session.session_id, { token: secret, metadata: { token: secret } }), at(1));
    const raw = await rawText();
    assert.ok(raw.includes(session.session_id), "the dump holds the rows");
    assert.ok(!raw.includes(secret), "no token in any row");
    const stored = await store.getSession(session.session_id);
    assert.deepEqual(stored?.metadata, { nested: { keep: 1 } });
  });

  test("heartbeat refreshes the lease, is not logged, and answers ended / not_found", async (t) => {
    const { store, rawText } = await open(t);
    const { session } = await store.recordStart(startEvent(), at(0));
    const beat = await store.recordHeartbeat(heartbeat(session.session_id), at(30));
    assert.ok(beat.status === "alive");
    assert.equal(beat.revived, false);
    assert.equal(beat.session.last_seen_at, at(30).toISOString());
    assert.equal(beat.session.status, "active");
    // An instance whose clock lags does not move the lease back.
    const lagging = await store.recordHeartbeat(heartbeat(session.session_id), at(20));
    assert.ok(lagging.status === "alive");
    assert.equal(lagging.session.last_seen_at, at(30).toISOString());
    assert.equal(await store.countEvents(), 1, "heartbeats are not in the event log");

    assert.deepEqual(await store.recordHeartbeat(heartbeat("sess_unknown"), at(31)), { status: "not_found" });
    await store.recordEnd(endEvent(session.session_id), at(60));
    const before = await rawText();
    const afterEnd = await store.recordHeartbeat(heartbeat(session.session_id), at(90));
    assert.equal(afterEnd.status, "ended");
    assert.ok(afterEnd.status === "ended");
    assert.equal(afterEnd.session.status, "ended");
    assert.equal(await rawText(), before, "a heartbeat never reopens an ended session");
  });

  test("lease expiry abandons only active sessions last seen before the cutoff, once", async (t) => {
    const { store } = await open(t);
    const { session: stale } = await store.recordStart(startEvent(), at(0));
    const { session: fresh } = await store.recordStart(startEvent(), at(100));
    const { session: boundary } = await store.recordStart(startEvent(), at(50));
    const { session: ended } = await store.recordStart(startEvent(), at(0));
    await store.recordEnd(endEvent(ended.session_id), at(1));

    const expired = await store.expireLeases(at(50));
    assert.deepEqual(
      expired.map((s) => s.session_id),
      [stale.session_id],
      "last seen exactly at the cutoff is still alive",
    );
    const [abandoned] = expired;
    assert.equal(abandoned?.status, "abandoned");
    assert.equal(abandoned?.exit_reason, "abandoned");
    assert.equal(abandoned?.ended_at, null);
    assert.equal(abandoned?.duration_seconds, null);
    assert.equal(abandoned?.last_seen_at, at(0).toISOString(), "when it was last heard from");
    assert.deepEqual(await store.getSession(stale.session_id), abandoned);
    assert.deepEqual(await store.expireLeases(at(50)), [], "each session is abandoned once");
    assert.equal((await store.getSession(fresh.session_id))?.status, "active");
    assert.equal((await store.getSession(boundary.session_id))?.status, "active");
    assert.equal((await store.getSession(ended.session_id))?.status, "ended");
    assert.equal(await store.countActive(), 2);
  });

  test("a heartbeat revives an abandoned session; a late end closes it as ended", async (t) => {
    const { store } = await open(t);
    const { session } = await store.recordStart(startEvent(), at(0));
    await store.expireLeases(at(10));
    const revived = await store.recordHeartbeat(heartbeat(session.session_id), at(20));
    assert.ok(revived.status === "alive");
    assert.equal(revived.revived, true);
    assert.equal(revived.session.status, "active");
    assert.equal(revived.session.exit_reason, null);
    assert.equal(revived.session.last_seen_at, at(20).toISOString());
    const again = await store.recordHeartbeat(heartbeat(session.session_id), at(21));
    assert.ok(again.status === "alive");
    assert.equal(again.revived, false);

    await store.expireLeases(at(100));
    assert.equal((await store.getSession(session.session_id))?.status, "abandoned");
    const end = await store.recordEnd(
      endEvent(session.session_id, { timestamp: at(45).toISOString(), metadata: { exit_reason: "sigterm" } }),
      at(200),
    );
    assert.ok(end.status === "ended");
    assert.equal(end.alreadyEnded, false);
    assert.equal(end.session.status, "ended");
    assert.equal(end.session.exit_reason, "sigterm");
    assert.equal(end.session.duration_seconds, 45);
  });

  test("list filters by component, status, hostname and start window ([started_after, started_before))", async (t) => {
    const { store } = await open(t);
    const make = async (component: string, hostname: string, seconds: number) =>
      (
        await store.recordStart(
          startEvent({ component_name: component, hostname, timestamp: at(seconds).toISOString() }),
          at(seconds),
        )
      ).session;
    const a = await make("mahavishnu", "h1", 0);
    const b = await make("oneiric", "h1", 10);
    const c = await make("mahavishnu", "h2", 20);
    const d = await make("mahavishnu", "h1", 30);
    await store.recordEnd(endEvent(c.session_id, { timestamp: at(25).toISOString() }), at(25));
    const ids = async (query: Parameters<SessionStore["listSessions"]>[0]) =>
      (await store.listSessions(query)).sessions.map((s) => s.session_id);

    assert.deepEqual(
      await ids({}),
      [d, c, b, a].map((s) => s.session_id),
      "newest first",
    );
    assert.deepEqual(
      await ids({ component_name: "mahavishnu" }),
      [d, c, a].map((s) => s.session_id),
    );
    assert.deepEqual(await ids({ status: "ended" }), [c.session_id]);
    assert.deepEqual(
      await ids({ status: "active", hostname: "h1" }),
      [d, b, a].map((s) => s.session_id),
    );
    assert.deepEqual(await ids({ hostname: "nowhere" }), []);
    assert.deepEqual(
      await ids({ started_after: at(10).toISOString(), started_before: at(30).toISOString() }),
      [c, b].map((s) => s.session_id),
      "after is inclusive, before exclusive",
    );
    // Any zone is accepted in a filter: 12:00:20+00:00 written as 13:00:20+01:00.
    assert.deepEqual(
      await ids({ started_after: "2026-01-31T13:00:20+01:00", component_name: "mahavishnu" }),
      [d, c].map((s) => s.session_id),
    );
    await assertContractError(store.listSessions({ started_before: "2026-02-30T00:00:00Z" }), /^started_before:/);
  });

  test("paging walks every session exactly once, newest first, ties broken by session_id", async (t) => {
    const { store } = await open(t);
    const created: SessionRecord[] = [];
    for (let i = 0; i < 23; i++) {
      // Pairs share a start time, so the tie-break is exercised across page boundaries.
      const seconds = Math.floor(i / 2);
      created.push((await store.recordStart(startEvent({ timestamp: at(seconds).toISOString() }), T0)).session);
    }
    const { seen, pages } = await walk(store, { limit: 5 });
    assert.equal(pages, 5);
    assert.equal(seen.length, 23);
    assert.equal(new Set(seen.map((s) => s.session_id)).size, 23);
    // Code-unit order: session ids are ASCII, and both stores compare them bytewise.
    const expected = [...created].sort((x, y) => {
      if (x.started_at !== y.started_at) return x.started_at < y.started_at ? 1 : -1;
      return x.session_id < y.session_id ? 1 : -1;
    });
    assert.deepEqual(
      seen.map((s) => s.session_id),
      expected.map((s) => s.session_id),
    );

    const filtered = await walk(store, { limit: 2, started_before: at(5).toISOString() });
    assert.equal(filtered.seen.length, 10);
    assert.ok(filtered.seen.every((s) => s.started_at < at(5).toISOString()));

    const exact = await store.listSessions({ limit: 23 });
    assert.equal(exact.sessions.length, 23);
    assert.equal(exact.nextCursor, null, "no next page when the last row is on this one");
  });

  test(`list returns ${LIST_LIMIT_DEFAULT} sessions by default`, async (t) => {
    const { store } = await open(t);
    for (let i = 0; i <= LIST_LIMIT_DEFAULT; i++) await store.recordStart(startEvent(), T0);
    const page = await store.listSessions({});
    assert.equal(page.sessions.length, LIST_LIMIT_DEFAULT);
    assert.notEqual(page.nextCursor, null);
    const rest = await store.listSessions({ cursor: page.nextCursor ?? "" });
    assert.equal(rest.sessions.length, 1);
    assert.equal(rest.nextCursor, null);
  });

  test("a malformed cursor is an invalid_argument naming the cursor", async (t) => {
    const { store } = await open(t);
    await store.recordStart(startEvent(), T0);
    const b64 = (text: string) => Buffer.from(text).toString("base64url");
    const bad = [
      "",
      "not a cursor!",
      b64("{}"),
      b64("[]"),
      b64('["2026-01-31T12:00:00.000Z"]'),
      b64('["yesterday","sess_x"]'),
      b64('["2026-02-30T12:00:00.000Z","sess_x"]'),
      b64('["2026-01-31T12:00:00.000Z",""]'),
      b64('["2026-01-31T12:00:00.000Z",42]'),
      b64('["2026-01-31T12:00:00.000Z","sess_\u0000"]'),
      "x".repeat(5000),
    ];
    for (const cursor of bad) {
      await assertContractError(store.listSessions({ cursor }), /^cursor: /);
    }
  });

  test("an impossible event time is a structured error naming the field, and writes nothing", async (t) => {
    const { store, rawText } = await open(t);
    const before = await rawText();
    // The contract refuses these first; the store refuses them too, whoever calls it.
    for (const timestamp of ["2026-02-30T12:00:00Z", "2026-01-31T24:00:00Z", "0000-06-01T00:00:00Z"]) {
      await assertContractError(store.recordStart({ ...startEvent(), timestamp }, T0), /^timestamp: /);
    }
    assert.equal(await rawText(), before);
    const { session } = await store.recordStart(startEvent(), T0);
    const written = await rawText();
    await assertContractError(
      store.recordEnd({ ...endEvent(session.session_id), timestamp: "2026-13-01T00:00:00Z" }, at(1)),
      /^timestamp: /,
    );
    assert.equal(await rawText(), written);
  });

  test("odd but valid data is stored and returned: unicode, NUL, lone surrogates, SQL text, large metadata", async (t) => {
    const { store } = await open(t);
    const sql = "'; DROP TABLE sessions; --";
    const big = "x".repeat(1_000_000);
    const event = startEvent({
      hostname: `host-ünïcödé-🙂-${sql}`,
      shell_type: 'Robert"); DROP TABLE events;--',
      user: { username: "ops\u0000root", home: "/home/\ud800lonely" },
      metadata: {
        [sql]: sql,
        "key\u0000nul": "v\u0000",
        rtl: "\u202eevil",
        big,
        deep: { a: [1, "two", null, true, { b: [] }] },
      },
    });
    const { session } = await store.recordStart(event, T0);
    const stored = await store.getSession(session.session_id);
    assert.ok(stored);
    assert.equal(stored.hostname, `host-ünïcödé-🙂-${sql}`);
    assert.equal(stored.shell_type, 'Robert"); DROP TABLE events;--');
    assert.equal(stored.username, "ops\ufffdroot", "NUL is kept as U+FFFD (PostgreSQL text cannot hold NUL)");
    assert.equal(stored.home, "/home/\ufffdlonely");
    assert.deepEqual(stored.metadata, {
      [sql]: sql,
      "key\ufffdnul": "v\ufffd",
      rtl: "\u202eevil",
      big,
      deep: { a: [1, "two", null, true, { b: [] }] },
    });
    const list = await store.listSessions({ hostname: `host-ünïcödé-🙂-${sql}` });
    assert.deepEqual(
      list.sessions.map((s) => s.session_id),
      [session.session_id],
    );
    assert.equal(await store.countEvents(), 1, "the tables are all still there");
  });

  test("very long hostnames and component names are stored and found by exact value", async (t) => {
    const { store } = await open(t);
    // Random (incompressible) text, longer than any index entry may be.
    const long = (seed: string) => `${seed}${randomBytes(3000).toString("base64url")}`;
    const hostname = long("h");
    const component = long("c");
    const twin = `${hostname.slice(0, 1000)}-different-tail`;
    const { session } = await store.recordStart(startEvent({ hostname, component_name: component }), T0);
    const { session: other } = await store.recordStart(startEvent({ hostname: twin }), T0);
    const ids = async (query: Parameters<SessionStore["listSessions"]>[0]) =>
      (await store.listSessions(query)).sessions.map((s) => s.session_id);
    assert.equal((await store.getSession(session.session_id))?.hostname, hostname);
    assert.deepEqual(await ids({ hostname }), [session.session_id]);
    assert.deepEqual(await ids({ hostname: twin }), [other.session_id], "the same first characters are not enough");
    assert.deepEqual(await ids({ component_name: component }), [session.session_id]);
    assert.deepEqual(await ids({ hostname: "h\u0000" }), [], "a filter the database cannot hold as text is no error");
  });

  test("every time in a record is ISO 8601 UTC with milliseconds", async (t) => {
    const { store } = await open(t);
    const { session } = await store.recordStart(startEvent({ timestamp: "2026-01-31T12:00:00-05:00" }), T0);
    const end = await store.recordEnd(endEvent(session.session_id, { timestamp: "2026-01-31T17:00:01.5Z" }), at(1));
    assert.ok(end.status === "ended");
    for (const value of [end.session.started_at, end.session.last_seen_at, end.session.ended_at]) {
      assert.match(String(value), ISO_UTC);
    }
    assert.equal(end.session.started_at, "2026-01-31T17:00:00.000Z");
    assert.equal(end.session.duration_seconds, 1.5);
  });

  test("migrate is idempotent", async (t) => {
    const { store } = await open(t);
    const { session } = await store.recordStart(startEvent(), T0);
    await store.migrate();
    await store.migrate();
    assert.deepEqual(await store.getSession(session.session_id), session);
    await store.ping();
  });
}
