/**
 * track_session_events over real HTTP with the SDK's client: many starts and
 * ends in one call, each answered at its index as its own call would be, one
 * bad item refusing nothing else, and whole-call refusals writing nothing.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import {
  GetSessionResult,
  ListSessionsResult,
  SessionEndResult,
  SessionEventBatchResult,
  SessionStartResult,
} from "../../src/contract/schemas.ts";
import { openStore } from "../../src/store/index.ts";
import type { SessionStore } from "../../src/store/types.ts";
import { type ConnectedClient, connectHttp, endPayload, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";

const BATCH = "track_session_events";
const COMPONENT = "mahavishnu";

describe("track_session_events", () => {
  let tracker: TrackerProcess;
  let store: SessionStore;
  let secret: string;
  let client: ConnectedClient;

  before(async () => {
    tracker = await startTracker();
    secret = tracker.secret as string;
    store = await openStore(tracker.store);
    client = await connectHttp(tracker.url, { token: await tokenFor(secret, COMPONENT) });
  });
  after(async () => {
    await client?.close();
    await store?.close();
    await tracker?.stop();
  });

  async function batch(events: unknown, via = client, extra: Record<string, unknown> = {}) {
    const call = await via.call(BATCH, { ...(events === undefined ? {} : { events }), ...extra });
    return { raw: call.raw, result: SessionEventBatchResult.parse(call.result) };
  }
  async function snapshot() {
    const page = await store.listSessions({ limit: 500 });
    return { events: await store.countEvents(), sessions: page.sessions.map((s) => `${s.session_id}:${s.status}`) };
  }
  const host = () => `batch-${randomUUID().slice(0, 8)}`;

  test("tools/list lists it with events of at most 100 items, and an output schema", async () => {
    const { tools } = await client.client.listTools();
    const tool = tools.find((t) => t.name === BATCH);
    assert.ok(tool, "track_session_events is listed");
    const events = tool.inputSchema.properties?.events as { type?: string; minItems?: number; maxItems?: number };
    assert.equal(events.type, "array");
    assert.equal(events.minItems, 1);
    assert.equal(events.maxItems, 100);
    assert.deepEqual(tool.inputSchema.required, ["events"]);
    assert.ok(tool.outputSchema?.properties?.results, "the output schema describes results");
  });

  test("20 starts, then their 20 ends, each answered in order; every event logged once", async () => {
    const hostname = host();
    const eventsBefore = await store.countEvents();
    const base = Date.now() - 60_000;
    const starts = Array.from({ length: 20 }, (_, i) =>
      startPayload({ hostname, pid: 1000 + i, timestamp: new Date(base + i).toISOString() }),
    );
    const started = await batch(starts);
    assert.equal(started.raw.isError, undefined);
    assert.equal(started.result.status, "ok");
    assert.equal(started.result.results.length, 20);
    const ids = started.result.results.map((r) => {
      const start = SessionStartResult.parse(r);
      assert.equal(start.status, "tracked", JSON.stringify(r));
      assert.equal(start.replayed, undefined);
      return start.session_id as string;
    });
    assert.equal(new Set(ids).size, 20, "distinct session ids");
    for (const [i, id] of ids.entries()) assert.equal((await store.getSession(id))?.pid, 1000 + i, "answered in order");

    const ended = await batch(ids.map((id) => endPayload(id)));
    assert.equal(ended.result.status, "ok");
    for (const [i, r] of ended.result.results.entries()) {
      const end = SessionEndResult.parse(r);
      assert.equal(end.status, "ended", JSON.stringify(r));
      assert.equal(end.session_id, ids[i]);
      assert.equal(typeof end.duration_seconds, "number");
    }
    const list = ListSessionsResult.parse((await client.call("list_sessions", { hostname, limit: 100 })).result);
    assert.deepEqual(list.sessions.map((s) => s.session_id).sort(), [...ids].sort());
    assert.ok(list.sessions.every((s) => s.status === "ended"));
    const got = GetSessionResult.parse((await client.call("get_session", { session_id: ids[7] })).result);
    assert.equal(got.session?.status, "ended");
    assert.equal(await store.countEvents(), eventsBefore + 40, "one log entry per event, no duplicates");
  });

  test("replaying a batch of starts answers the same sessions, replayed, and writes nothing", async () => {
    const hostname = host();
    const starts = Array.from({ length: 5 }, () => startPayload({ hostname }));
    const first = (await batch(starts)).result.results.map((r) => r.session_id);
    const before = await snapshot();
    const again = await batch(starts);
    assert.deepEqual(
      again.result.results.map((r) => [r.status, r.session_id, (r as { replayed?: boolean }).replayed]),
      first.map((id) => ["tracked", id, true]),
    );
    assert.deepEqual(await snapshot(), before);
  });

  test("a mixed batch: each item answered on its own, only the valid one recorded", async () => {
    const hostname = host();
    const before = await snapshot();
    const unknown = `sess_${randomUUID()}`;
    const { raw, result } = await batch([
      startPayload({ hostname }),
      startPayload({ hostname, pid: 0 }),
      endPayload(unknown),
      { ...startPayload({ hostname }), event_type: "bogus" },
    ]);
    assert.equal(raw.isError, undefined);
    assert.equal(result.status, "ok");
    const [good, badPid, missing, bogus] = result.results;
    assert.equal(good?.status, "tracked");
    assert.equal(badPid?.status, "error");
    assert.equal(badPid?.session_id, null);
    assert.equal(badPid?.code, "invalid_argument");
    assert.match(badPid?.error ?? "", /events\[1\].*pid/);
    assert.match(badPid?.issues?.[0]?.field ?? "", /pid$/);
    assert.equal(missing?.status, "not_found");
    assert.equal(missing?.code, "not_found");
    assert.equal(missing?.session_id, unknown);
    assert.equal(bogus?.status, "error");
    assert.equal(bogus?.session_id, null);
    assert.equal(bogus?.code, "invalid_argument");
    assert.match(bogus?.issues?.[0]?.field ?? "", /event_type$/);
    const after = await snapshot();
    assert.equal(after.events, before.events + 1, "only the valid start was logged");
    const recorded = await store.listSessions({ hostname, limit: 10 });
    assert.deepEqual(
      recorded.sessions.map((s) => s.session_id),
      [good?.session_id],
    );
  });

  test("a bad envelope is refused as a whole, naming events, and records nothing", async () => {
    const before = await snapshot();
    const tooMany = Array.from({ length: 101 }, () => startPayload({ hostname: "never-recorded" }));
    for (const events of [[], tooMany, undefined, "not-an-array"]) {
      const { raw, result } = await batch(events);
      const label = Array.isArray(events) ? `${events.length} events` : String(events);
      assert.equal(raw.isError, true, label);
      assert.equal(result.status, "error", label);
      assert.deepEqual(result.results, []);
      assert.equal(result.code, "invalid_argument", label);
      assert.match(result.error ?? "", /events/, label);
      assert.equal(result.issues?.[0]?.field, "events", label);
    }
    assert.deepEqual(await snapshot(), before);
  });

  test("auth: no token, another component's items, a read-only token", async (t) => {
    const anonymous = await connectHttp(tracker.url);
    t.after(() => anonymous.close());
    const hostname = host();
    const before = await snapshot();
    const refused = await batch([startPayload({ hostname })], anonymous);
    assert.equal(refused.raw.isError, true);
    assert.equal(refused.result.code, "unauthenticated");
    assert.deepEqual(refused.result.results, []);

    const readOnly = await connectHttp(tracker.url, { token: await tokenFor(secret, COMPONENT, ["sessions:read"]) });
    t.after(() => readOnly.close());
    const denied = await batch([startPayload({ hostname })], readOnly);
    assert.equal(denied.result.status, "error");
    assert.equal(denied.result.code, "permission_denied");
    assert.match(denied.result.error ?? "", /sessions:write/);
    assert.deepEqual(denied.result.results, []);
    assert.deepEqual(await snapshot(), before, "nothing was written");

    // A session of another component, which this component's batch may not end.
    const oneiric = await connectHttp(tracker.url, { token: await tokenFor(secret, "oneiric") });
    t.after(() => oneiric.close());
    const theirs = SessionStartResult.parse(
      (await oneiric.call("track_session_start", startPayload({ component_name: "oneiric", hostname }))).result,
    ).session_id as string;
    // The token as an argument, as Session-Buddy clients send it.
    const { result } = await batch(
      [startPayload({ hostname, component_name: "oneiric" }), startPayload({ hostname }), endPayload(theirs)],
      anonymous,
      { token: await tokenFor(secret, COMPONENT) },
    );
    assert.deepEqual(
      result.results.map((r) => [r.status, r.code]),
      [
        ["error", "permission_denied"],
        ["tracked", undefined],
        ["error", "permission_denied"],
      ],
    );
    assert.match(result.results[0]?.error ?? "", /component_name: this token is for component "mahavishnu"/);
    assert.equal((await store.getSession(theirs))?.status, "active");
    const mine = await store.listSessions({ hostname, component_name: COMPONENT, limit: 10 });
    assert.deepEqual(
      mine.sessions.map((s) => s.session_id),
      [result.results[1]?.session_id],
    );
  });

  test("an item's result is the one its own call gives", async () => {
    const keys = (r: object) => Object.keys(r).sort();
    const single = SessionStartResult.parse((await client.call("track_session_start", startPayload())).result);
    const [inBatch] = (await batch([startPayload()])).result.results;
    assert.deepEqual(keys(inBatch ?? {}), keys(single));

    // A start first sent alone, replayed in a batch: the same session, replayed.
    const payload = startPayload();
    const alone = SessionStartResult.parse((await client.call("track_session_start", payload)).result);
    const [replay] = (await batch([payload])).result.results;
    assert.deepEqual(replay, { ...alone, replayed: true });

    const endAlone = (await client.call("track_session_end", endPayload(alone.session_id as string))).result;
    const [endAgain] = (await batch([endPayload(alone.session_id as string)])).result.results;
    assert.deepEqual(keys(endAgain ?? {}), keys(endAlone));

    const unknown = `sess_${randomUUID()}`;
    const notFoundAlone = (await client.call("track_session_end", endPayload(unknown))).result;
    assert.deepEqual((await batch([endPayload(unknown)])).result.results[0], notFoundAlone);

    const invalidAlone = SessionStartResult.parse(
      (await client.call("track_session_start", startPayload({ pid: 0 }))).result,
    );
    const [invalid] = (await batch([startPayload({ pid: 0 })])).result.results;
    assert.deepEqual(
      { ...invalid, error: undefined },
      { ...invalidAlone, error: undefined },
      "same status, code and issues",
    );
  });
});
