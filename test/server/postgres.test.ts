/**
 * The tracker on a real PostgreSQL (Debian's server, started by the test
 * harness on a free loopback port): the lifecycle over both transports, and
 * several server instances sharing one database.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SessionStartResult } from "../../src/contract/schemas.ts";
import { openStore } from "../../src/store/index.ts";
import { connectHttp, connectStdio, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { createDatabase, type PostgresServer, startPostgres } from "../helpers/postgres.ts";
import { startTracker } from "../helpers/tracker.ts";
import { exerciseLifecycle } from "./lifecycle.ts";

describe("tracker on PostgreSQL", () => {
  let pg: PostgresServer;

  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.stop();
  });

  test("the session lifecycle over HTTP and over stdio", async (t) => {
    const database = await createDatabase(pg.url, "tracker");
    const tracker = await startTracker({ store: database });
    t.after(() => tracker.stop());
    assert.match(tracker.log, /store: postgres:\/\/postgres@127\.0\.0\.1:\d+\/tracker_/);
    const token = await tokenFor(tracker.secret as string, "mahavishnu");

    const http = await connectHttp(tracker.url, { token });
    t.after(() => http.close());
    const overHttp = await exerciseLifecycle(http);

    const stdio = await connectStdio({
      store: database,
      stateDir: tracker.stateDir,
      secret: tracker.secret as string,
      environmentToken: token,
    });
    t.after(() => stdio.close());
    const overStdio = await exerciseLifecycle(stdio);

    // Both servers wrote to the same database: each sees the other's session.
    const seenByStdio = await stdio.call("get_session", { session_id: overHttp });
    assert.equal(seenByStdio.result.status, "ok");
    const seenByHttp = await http.call("get_session", { session_id: overStdio });
    assert.equal(seenByHttp.result.status, "ok");
  });

  test("two server instances on one database: 200 concurrent starts make 200 distinct sessions, and replays none", async (t) => {
    const database = await createDatabase(pg.url, "tracker");
    const first = await startTracker({ store: database });
    t.after(() => first.stop());
    const second = await startTracker({ store: database, secret: first.secret as string });
    t.after(() => second.stop());
    const token = await tokenFor(first.secret as string, "mahavishnu");
    const clients = [await connectHttp(first.url, { token }), await connectHttp(second.url, { token })];
    t.after(() => Promise.all(clients.map((c) => c.close())));

    const payloads = Array.from({ length: 200 }, (_, i) => startPayload({ hostname: `host-${i % 7}`, pid: i + 1 }));
    const results = await Promise.all(
      payloads.map((p, i) => (clients[i % 2] ?? clients[0])?.call("track_session_start", p)),
    );
    const parsed = results.map((r) => SessionStartResult.parse(r?.result));
    const errors = parsed.filter((r) => r.status !== "tracked");
    assert.equal(errors.length, 0, JSON.stringify(errors.slice(0, 3)));
    const ids = parsed.map((r) => r.session_id);
    assert.equal(new Set(ids).size, 200, "200 distinct session ids, no duplicates");

    const store = await openStore(database);
    t.after(() => store.close());
    assert.equal((await store.listSessions({ limit: 500 })).sessions.length, 200);
    assert.equal(await store.countEvents(), 200);

    // Every start replayed at once on the other instance: the same ids, nothing new.
    const replays = await Promise.all(
      payloads.map((p, i) => (clients[(i + 1) % 2] ?? clients[0])?.call("track_session_start", p)),
    );
    const replayed = replays.map((r) => SessionStartResult.parse(r?.result));
    assert.deepEqual(
      replayed.map((r) => r.session_id),
      ids,
    );
    assert.ok(replayed.every((r) => r.replayed === true));
    assert.equal((await store.listSessions({ limit: 500 })).sessions.length, 200);
    assert.equal(await store.countEvents(), 200);
  });
});
