import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import type { SessionRecord } from "../../src/contract/schemas.ts";
import { openStore } from "../../src/store/index.ts";
import type { SessionStore } from "../../src/store/types.ts";
import { createDatabase, type PostgresServer, startPostgres } from "../helpers/postgres.ts";
import { storeConformance } from "./conformance.ts";
import { at, endEvent, heartbeat, startEvent, T0 } from "./fixtures.ts";

let server: PostgresServer;
before(async () => {
  const started = performance.now();
  server = await startPostgres();
  console.log(`# PostgreSQL ready in ${Math.round(performance.now() - started)} ms`);
});
after(() => server?.stop());

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** `count` stores on one database, opened at once as server instances starting together would. */
async function openMany(url: string, count: number): Promise<SessionStore[]> {
  const results = await Promise.allSettled(Array.from({ length: count }, () => openStore(url)));
  const opened = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failure = results.find((r) => r.status === "rejected");
  if (failure) {
    await Promise.all(opened.map((s) => s.close()));
    throw failure.reason;
  }
  return opened;
}

async function openPair(
  t: { after(fn: () => Promise<void>): void },
  url: string,
): Promise<[SessionStore, SessionStore]> {
  const [a, b] = (await openMany(url, 2)) as [SessionStore, SessionStore];
  t.after(async () => {
    await a.close();
    await b.close();
  });
  return [a, b];
}

describe("PostgreSQL store", () => {
  storeConformance(async () => {
    const url = await createDatabase(server.url);
    const store = await openStore(url);
    return {
      store,
      rawText: async () =>
        JSON.stringify([
          await query(url, "SELECT * FROM sessions ORDER BY session_id"),
          await query(url, "SELECT * FROM events ORDER BY seq"),
        ]),
      eventIds: async () =>
        (await query<{ event_id: string }>(url, "SELECT event_id FROM events")).map((r) => r.event_id),
    };
  });
});

describe("PostgreSQL shared by several server instances", () => {
  test("200 concurrent starts split across two instances: 200 distinct sessions, no errors", async (t) => {
    const url = await createDatabase(server.url);
    const [a, b] = await openPair(t, url);
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).recordStart(startEvent({ pid: i + 1 }), T0)),
    );
    const errors = results.filter((r) => r.status === "rejected");
    assert.deepEqual(errors, []);
    const ids = results.map((r) => (r.status === "fulfilled" ? r.value.session.session_id : ""));
    assert.equal(new Set(ids).size, 200);
    assert.ok(results.every((r) => r.status === "fulfilled" && r.value.created));
    assert.equal(await a.countEvents(), 200);
    const [row] = await query<{ n: string; d: string }>(
      url,
      "SELECT count(*) AS n, count(DISTINCT session_id) AS d FROM sessions",
    );
    assert.deepEqual(row, { n: "200", d: "200" });
  });

  test("one start replayed concurrently from both instances yields exactly one session", async (t) => {
    const url = await createDatabase(server.url);
    const [a, b] = await openPair(t, url);
    const event = startEvent();
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).recordStart(event, at(i))),
    );
    assert.equal(new Set(outcomes.map((o) => o.session.session_id)).size, 1);
    assert.equal(outcomes.filter((o) => o.created).length, 1);
    assert.equal(await b.countEvents(), 1);
    assert.equal((await a.listSessions({})).sessions.length, 1);
  });

  test("concurrent ends, heartbeats and lease expiry from both instances each take effect once", async (t) => {
    const url = await createDatabase(server.url);
    const [a, b] = await openPair(t, url);
    const sessions: SessionRecord[] = [];
    for (let i = 0; i < 20; i++) sessions.push((await a.recordStart(startEvent(), at(0))).session);
    const [first] = sessions;
    assert.ok(first);

    const ends = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).recordEnd(endEvent(first.session_id), at(60))),
    );
    assert.equal(ends.filter((o) => o.status === "ended" && !o.alreadyEnded).length, 1);
    assert.equal(await a.countEvents(), 21);

    const expired = await Promise.all([a.expireLeases(at(30)), b.expireLeases(at(30)), a.expireLeases(at(30))]);
    const abandoned = expired.flat().map((s) => s.session_id);
    assert.equal(abandoned.length, 19, "each active session abandoned by exactly one call");
    assert.equal(new Set(abandoned).size, 19);

    const second = sessions[1];
    assert.ok(second);
    const beats = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).recordHeartbeat(heartbeat(second.session_id), at(90))),
    );
    assert.equal(beats.filter((o) => o.status === "alive" && o.revived).length, 1, "revived once");
    assert.equal(await b.countActive(), 1);
  });

  test("instances starting together on a fresh database migrate it once, safely", async () => {
    const url = await createDatabase(server.url);
    const stores = await openMany(url, 4);
    try {
      await Promise.all(stores.map((s) => s.migrate()));
      const versions = await query<{ version: number }>(url, "SELECT version FROM schema_migrations");
      assert.deepEqual(versions.map((v) => v.version).sort(), [1, 2]);
      const { session } = await (stores[0] as SessionStore).recordStart(startEvent(), T0);
      assert.equal((await (stores[3] as SessionStore).getSession(session.session_id))?.session_id, session.session_id);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  test("location names the database without its password", async (t) => {
    const url = new URL(await createDatabase(server.url));
    url.password = "s3cret-pa55";
    url.searchParams.set("password", "s3cret-pa55");
    const store = await openStore(url.toString());
    t.after(() => store.close());
    assert.equal(store.kind, "postgres");
    assert.doesNotMatch(store.location, /s3cret/);
    assert.match(store.location, new RegExp(`^postgres://postgres@127\\.0\\.0\\.1:${url.port}${url.pathname}$`));
    await store.ping();
  });
});

describe("SQLite and PostgreSQL agree", () => {
  test("the same events give the same records in both stores", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-agree-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const sqlite = await openStore(`sqlite:${join(dir, "tracker.db")}`);
    const postgres = await openStore(await createDatabase(server.url));
    t.after(async () => {
      await sqlite.close();
      await postgres.close();
    });
    const starts = [
      startEvent({ timestamp: "2026-01-31T12:00:00.987654+02:00", metadata: { trace_id: "1".repeat(32), n: 1.25 } }),
      startEvent({ timestamp: "2026-01-31T12:00:00", hostname: "ünï\u0000", metadata: { s: "\ud800", z: [null] } }),
      startEvent({ timestamp: "0001-01-01T00:00:00Z", component_name: "old" }),
      startEvent({ timestamp: "9999-12-31T23:59:59.999Z", component_name: "new" }),
    ];
    const late = startEvent({ timestamp: at(3).toISOString() });
    const comparable = (record: SessionRecord) => ({ ...record, session_id: "" });
    const run = async (store: SessionStore) => {
      const records: object[] = [];
      for (const event of starts) {
        const { session } = await store.recordStart(event, at(1));
        records.push(comparable(session));
        const end = await store.recordEnd(
          endEvent(session.session_id, { timestamp: "2026-01-31T12:05:00.5-01:00" }),
          at(2),
        );
        assert.ok(end.status === "ended");
        records.push(comparable(end.session));
      }
      const { session } = await store.recordStart(late, at(3));
      await store.expireLeases(at(10));
      const beat = await store.recordHeartbeat(heartbeat(session.session_id), at(11));
      assert.ok(beat.status === "alive");
      records.push(comparable(beat.session));
      const listed = await store.listSessions({ limit: 2, started_after: "2026-01-01T00:00:00Z" });
      records.push(listed.sessions.map(comparable));
      return records;
    };
    assert.deepEqual(await run(postgres), await run(sqlite));
  });
});
