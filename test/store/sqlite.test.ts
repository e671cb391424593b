import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { openStore } from "../../src/store/index.ts";
import { SqliteDatabase } from "../../src/store/sqlite.ts";
import { storeConformance } from "./conformance.ts";
import { at, endEvent, heartbeat, startEvent, T0 } from "./fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-sqlite-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function freshPath(): string {
  files++;
  return join(dir, `store-${files}`, "tracker.db");
}

function readRaw<T>(path: string, read: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

describe("SQLite store", () => {
  storeConformance(async () => {
    const path = freshPath();
    const store = await openStore(`sqlite:${path}`);
    return {
      store,
      rawText: async () =>
        readRaw(path, (db) =>
          JSON.stringify([
            db.prepare("SELECT * FROM sessions ORDER BY session_id").all(),
            db.prepare("SELECT * FROM events ORDER BY seq").all(),
          ]),
        ),
      eventIds: async () =>
        readRaw(path, (db) =>
          db
            .prepare("SELECT event_id FROM events")
            .all()
            .map((row) => String(row.event_id)),
        ),
    };
  });
});

describe("SQLite file", () => {
  test("the database file is created owner-only, with its directory, and in WAL mode", async (t) => {
    const path = freshPath();
    const store = await openStore(`sqlite:${path}`);
    t.after(() => store.close());
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(path, "..")).mode & 0o777, 0o700);
    assert.equal(store.location, `sqlite:${path}`);
    const mode = readRaw(path, (db) => db.prepare("PRAGMA journal_mode").get()?.journal_mode);
    assert.equal(mode, "wal");
  });

  test("two store instances on one file see each other's writes, interleaved", async (t) => {
    const path = freshPath();
    const a = await openStore(`sqlite:${path}`);
    const b = await openStore(`sqlite:${path}`);
    t.after(async () => {
      await a.close();
      await b.close();
    });
    const event = startEvent();
    const first = await a.recordStart(event, T0);
    const replay = await b.recordStart(event, at(1));
    assert.equal(replay.created, false);
    assert.equal(replay.session.session_id, first.session.session_id);

    const other = await b.recordStart(startEvent(), T0);
    const beat = await a.recordHeartbeat(heartbeat(other.session.session_id), at(5));
    assert.equal(beat.status, "alive");
    const ended = await b.recordEnd(endEvent(first.session.session_id), at(60));
    assert.equal(ended.status, "ended");
    const endedAgain = await a.recordEnd(endEvent(first.session.session_id), at(61));
    assert.ok(endedAgain.status === "ended");
    assert.equal(endedAgain.alreadyEnded, true);

    const [expiredA, expiredB] = await Promise.all([a.expireLeases(at(100)), b.expireLeases(at(100))]);
    assert.deepEqual(
      [...expiredA, ...expiredB].map((s) => s.session_id),
      [other.session.session_id],
      "abandoned once, by one of them",
    );
    assert.equal(await a.countEvents(), 3);
    assert.equal(await b.countEvents(), 3);
    assert.deepEqual(
      (await a.listSessions({})).sessions.map((s) => s.session_id),
      (await b.listSessions({})).sessions.map((s) => s.session_id),
    );
  });

  test("two threads writing one file at once: every start recorded, one session per event", async () => {
    const path = freshPath();
    const setup = await openStore(`sqlite:${path}`);
    await setup.close();
    const perWorker = 100;
    const shared = Array.from({ length: 10 }, () => startEvent());
    const runWorker = (worker: number) =>
      new Promise<{ created: number; replayed: number; ids: string[] }>((resolve, reject) => {
        const thread = new Worker(new URL("./sqlite-writer.ts", import.meta.url), {
          workerData: { path, worker, count: perWorker, shared },
        });
        thread.once("message", resolve);
        thread.once("error", reject);
        thread.once("exit", (code) => {
          if (code !== 0) reject(new Error(`writer ${worker} exited with ${code}`));
        });
      });
    const results = await Promise.all([runWorker(1), runWorker(2)]);
    const ids = results.flatMap((r) => r.ids);
    const store = await openStore(`sqlite:${path}`);
    try {
      // Each worker: `perWorker` starts of its own plus every shared start.
      assert.equal(
        results.reduce((n, r) => n + r.created + r.replayed, 0),
        2 * (perWorker + shared.length),
      );
      assert.equal(
        results.reduce((n, r) => n + r.created, 0),
        2 * perWorker + shared.length,
      );
      assert.equal(new Set(ids).size, 2 * perWorker + shared.length);
      assert.equal(await store.countEvents(), 2 * perWorker + shared.length);
      assert.equal(await store.countActive(), 2 * perWorker + shared.length);
    } finally {
      await store.close();
    }
  });

  test("a database from a newer release is refused with a message saying to upgrade", async () => {
    const path = freshPath();
    const store = await openStore(`sqlite:${path}`);
    await store.close();
    const db = new DatabaseSync(path);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(
      999,
      "from the future",
      T0.toISOString(),
    );
    db.close();
    await assert.rejects(openStore(`sqlite:${path}`), /schema is version 999.*upgrade otel-shell-sessions/);
  });
});

describe("SQLite group commit", () => {
  test("when SQLite rolls a whole group back (as on a full disk), every caller of that group hears of it; later callers are stored", async (t) => {
    const db = new SqliteDatabase(freshPath());
    t.after(() => db.close());
    await db.script("CREATE TABLE t (v TEXT NOT NULL)");
    const insert = (v: string) => db.transaction((tx) => tx.rows("INSERT INTO t (v) VALUES (?1)", [v]));
    const lost = new Error("the transaction was rolled back by SQLite");
    const outcomes = await Promise.allSettled([
      insert("before"),
      // What SQLite does on SQLITE_FULL or an I/O error: the whole transaction is gone, then the statement fails.
      db.transaction(async (tx) => {
        await tx.script("ROLLBACK");
        throw lost;
      }),
      insert("after"),
    ]);
    assert.deepEqual(
      outcomes.map((o) => (o.status === "rejected" ? o.reason : "stored")),
      [lost, lost, "stored"],
    );
    assert.deepEqual(
      (await db.rows("SELECT v FROM t")).map((row) => row.v),
      ["after"],
    );
  });
});
