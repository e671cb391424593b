/**
 * The tracker on SQLite, over real Streamable HTTP and real stdio, with the
 * SDK's own client: the whole session lifecycle, paging, and replays.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SessionEndResult, SessionStartResult } from "../../src/contract/schemas.ts";
import { openStore } from "../../src/store/index.ts";
import type { SessionStore } from "../../src/store/types.ts";
import { connectHttp, connectStdio, endPayload, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";
import { exerciseLifecycle, listAllIds } from "./lifecycle.ts";

describe("tracker on SQLite", () => {
  let tracker: TrackerProcess;
  let store: SessionStore;
  let token: string;

  before(async () => {
    tracker = await startTracker();
    store = await openStore(tracker.store);
    token = await tokenFor(tracker.secret as string, "mahavishnu");
  });
  after(async () => {
    await store?.close();
    await tracker?.stop();
  });

  test("over HTTP with the token in the Authorization header", async (t) => {
    const client = await connectHttp(tracker.url, { token });
    t.after(() => client.close());
    await exerciseLifecycle(client);
  });

  test("over HTTP with the token as an argument (as Session-Buddy clients send it)", async (t) => {
    const client = await connectHttp(tracker.url);
    t.after(() => client.close());
    await exerciseLifecycle(client, { token });
  });

  test("over stdio with the token from the server's environment", async (t) => {
    const client = await connectStdio({
      store: tracker.store,
      stateDir: tracker.stateDir,
      secret: tracker.secret as string,
      environmentToken: token,
    });
    t.after(() => client.close());
    await exerciseLifecycle(client);
    assert.match(client.log(), /serving MCP on stdio/);
  });

  test("over stdio with the token as an argument", async (t) => {
    const client = await connectStdio({
      store: tracker.store,
      stateDir: tracker.stateDir,
      secret: tracker.secret as string,
    });
    t.after(() => client.close());
    await exerciseLifecycle(client, { token, component: "mahavishnu" });
  });

  test("list_sessions pages through every session exactly once, newest first", async (t) => {
    const client = await connectHttp(tracker.url, { token });
    t.after(() => client.close());
    const hostname = "paging-host";
    const base = Date.now() - 3_600_000;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await client.call(
        "track_session_start",
        startPayload({ hostname, timestamp: new Date(base + i * 1000).toISOString() }),
      );
      ids.push(SessionStartResult.parse(r.result).session_id as string);
    }
    const seen = await listAllIds(client, { hostname }, 2);
    assert.deepEqual(seen, [...ids].reverse());
    // A page never shows another component's sessions, even when asked without a filter.
    const other = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "oneiric") });
    t.after(() => other.close());
    assert.deepEqual(await listAllIds(other, { hostname }, 2), []);
  });

  test("replaying every start and end twice changes nothing; the event log holds each event_id once", async (t) => {
    const client = await connectHttp(tracker.url, { token });
    t.after(() => client.close());
    const starts = Array.from({ length: 4 }, (_, i) =>
      startPayload({ hostname: "replay-host", timestamp: new Date(Date.now() - 60_000 + i).toISOString() }),
    );
    const sessionIds: string[] = [];
    for (const start of starts) {
      const r = SessionStartResult.parse((await client.call("track_session_start", start)).result);
      assert.equal(r.status, "tracked");
      assert.equal(r.replayed, undefined);
      sessionIds.push(r.session_id as string);
    }
    const ends = sessionIds.map((id) => endPayload(id, { metadata: { exit_reason: "exit_command" } }));
    for (const end of ends) {
      assert.equal(SessionEndResult.parse((await client.call("track_session_end", end)).result).status, "ended");
    }
    const eventsBefore = await store.countEvents();
    const snapshot = await Promise.all(sessionIds.map((id) => store.getSession(id)));

    for (let round = 0; round < 2; round++) {
      for (const [i, start] of starts.entries()) {
        const r = SessionStartResult.parse((await client.call("track_session_start", start)).result);
        assert.equal(r.status, "tracked");
        assert.equal(r.session_id, sessionIds[i], "a replayed start answers the same session_id");
        assert.equal(r.replayed, true);
      }
      for (const [i, end] of ends.entries()) {
        const r = SessionEndResult.parse((await client.call("track_session_end", end)).result);
        assert.equal(r.status, "ended");
        assert.equal(r.session_id, sessionIds[i]);
      }
    }
    assert.equal(await store.countEvents(), eventsBefore, "no event was logged twice");
    assert.deepEqual(await Promise.all(sessionIds.map((id) => store.getSession(id))), snapshot);
    const replayHost = await store.listSessions({ hostname: "replay-host", limit: 100 });
    assert.equal(replayHost.sessions.length, starts.length, "no session was created twice");
  });

  test("concurrent replays of one start, over both transports at once, make one session", async (t) => {
    const http = await connectHttp(tracker.url, { token });
    t.after(() => http.close());
    const stdio = await connectStdio({
      store: tracker.store,
      stateDir: tracker.stateDir,
      secret: tracker.secret as string,
      environmentToken: token,
    });
    t.after(() => stdio.close());
    const start = startPayload({ hostname: "race-host" });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? http : stdio).call("track_session_start", start)),
    );
    const ids = new Set(results.map((r) => SessionStartResult.parse(r.result).session_id));
    assert.equal(ids.size, 1);
    assert.equal((await store.listSessions({ hostname: "race-host" })).sessions.length, 1);
  });
});
