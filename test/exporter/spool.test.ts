import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { type TestContext, test } from "node:test";
import { leaseHolderGone } from "../../src/exporter/drainer.ts";
import { type OpenSpoolOptions, Spool, type SpoolInput } from "../../src/exporter/spool.ts";
import { tempDir } from "./support.ts";

const LIMITS = { maxEvents: 1000, maxBytes: 1024 * 1024 };

/** Where a fresh spool goes, in a directory removed after `t`. */
function newSpoolPath(t: TestContext, name = "spool.db"): string {
  return join(tempDir(t), name);
}

/** Opens the spool at `path` for the length of `t`. */
function openSpool(t: TestContext, path: string, options: Partial<OpenSpoolOptions> = {}): Spool {
  const spool = Spool.open(path, { limits: LIMITS, ...options });
  t.after(() => spool.close());
  return spool;
}

function start(component = "c"): SpoolInput {
  const id = randomUUID();
  return {
    eventId: id,
    kind: "start",
    startEventId: id,
    component,
    payload: { event_id: id, component_name: component },
  };
}
function end(of: SpoolInput): SpoolInput {
  return {
    eventId: randomUUID(),
    kind: "end",
    startEventId: of.startEventId,
    component: of.component,
    payload: { x: 1 },
  };
}

test("events keep their order; an end finds its session id once its start is acknowledged", (t) => {
  const spool = openSpool(t, newSpoolPath(t));
  const s1 = start();
  const s2 = start();
  const e1 = end(s1);
  assert.deepEqual(spool.put([s1, s2, e1]).stored, [s1.eventId, s2.eventId, e1.eventId]);
  assert.deepEqual(
    spool.batch(0, 10).map((r) => r.eventId),
    [s1.eventId, s2.eventId, e1.eventId],
  );
  assert.equal(spool.locateStart(s1.eventId).where, "spooled");
  spool.ackStart(s1.eventId, "tracker-1");
  assert.deepEqual(spool.locateStart(s1.eventId), { where: "mapped", trackerSessionId: "tracker-1" });
  assert.equal(spool.has(s1.eventId), false);
  assert.equal(spool.count(), 2);
  // Spooling the same event again keeps one row (at-least-once writers), and learns a session id.
  spool.put([{ ...e1, trackerSessionId: "tracker-1" }]);
  assert.equal(spool.count(), 2);
  assert.equal(spool.batch(0, 10).find((r) => r.eventId === e1.eventId)?.trackerSessionId, "tracker-1");
});

test("bounds: events beyond the row or byte limit are refused and counted as lost, never silently", (t) => {
  const spool = openSpool(t, newSpoolPath(t), { limits: { maxEvents: 3, maxBytes: 1024 * 1024 } });
  const inputs = [start(), start(), start(), start(), start()];
  const result = spool.put(inputs);
  assert.equal(result.stored.length, 3);
  assert.equal(result.lost.length, 2);
  assert.match(result.lost[0]?.reason ?? "", /maximum of 3 events/);
  assert.equal(spool.stats().lost, 2);

  const small = openSpool(t, newSpoolPath(t, "small.db"), { limits: { maxEvents: 100, maxBytes: 200 } });
  const big = { ...start(), payload: { blob: "x".repeat(500) } };
  const r2 = small.put([big]);
  assert.equal(r2.lost.length, 1);
  assert.match(r2.lost[0]?.reason ?? "", /maximum of 200 bytes/);
  assert.equal(small.stats().lost, 1);
});

test("the drain lease admits one process at a time and expires", (t) => {
  const path = newSpoolPath(t);
  const a = openSpool(t, path);
  const b = openSpool(t, path);
  assert.equal(a.acquireLease("a", 60_000), true);
  assert.equal(b.acquireLease("b", 60_000), false, "a second process must not drain the same rows");
  assert.equal(a.acquireLease("a", 60_000), true, "the owner renews");
  a.releaseLease("a");
  assert.equal(b.acquireLease("b", 1), true);
  const until = Date.now() + 50;
  while (Date.now() < until) {
    // The lease has a 1 ms lifetime: let it expire.
  }
  assert.equal(a.acquireLease("a", 60_000), true, "an expired lease can be taken over");
});

test("a lease held by a process of this host that has died is taken over at once", (t) => {
  const a = openSpool(t, newSpoolPath(t));
  const dead = `${hostname()}:4194305:gone`;
  const alive = `${hostname()}:${process.ppid}:parent`;
  assert.equal(a.acquireLease(alive, 60_000), true);
  assert.equal(a.acquireLease("me", 60_000, leaseHolderGone), false, "a live holder keeps its lease");
  a.releaseLease(alive);
  assert.equal(a.acquireLease(dead, 60_000), true);
  assert.equal(a.acquireLease("me", 60_000), false, "without a liveness check the lease would block");
  assert.equal(a.acquireLease("me", 60_000, leaseHolderGone), true);
  assert.equal(leaseHolderGone("other-host:1:x"), false, "a process on another host is never presumed dead");
});

test("two processes (connections) write to one spool concurrently without losing rows", (t) => {
  const path = newSpoolPath(t);
  const a = openSpool(t, path);
  const b = openSpool(t, path);
  for (let i = 0; i < 50; i++) {
    a.put([start("a")]);
    b.put([start("b")]);
  }
  assert.equal(a.count(), 100);
  const db = new DatabaseSync(path);
  t.after(() => db.close());
  assert.equal((db.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode, "wal");
});

test("quarantine moves a row aside with its reason; stats count it", (t) => {
  const spool = openSpool(t, newSpoolPath(t));
  const s = start();
  spool.put([s]);
  const [row] = spool.batch(0, 1);
  spool.quarantine(row?.seq ?? -1, "its payload is not JSON");
  assert.equal(spool.count(), 0);
  assert.equal(spool.stats().quarantined, 1);
  assert.equal(spool.locateStart(s.eventId).where, "quarantined");
  assert.equal(spool.quarantined(10)[0]?.reason, "its payload is not JSON");
});

test("a spool file SQLite cannot read is moved aside with a warning and a fresh one is used (see spool-integrity)", (t) => {
  const dir = tempDir(t);
  const path = join(dir, "spool.db");
  writeFileSync(path, "this is not a database, just some bytes that are long enough to have a header".repeat(20));
  const warnings: string[] = [];
  const spool = openSpool(t, path, { onWarning: (m) => warnings.push(m) });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? "", /was damaged .* the damaged file is kept at .*spool\.db\.corrupt-\d+/);
  assert.ok(readdirSync(dir).some((f) => f.startsWith("spool.db.corrupt-")));
  spool.put([start()]);
  assert.equal(spool.count(), 1);
  assert.ok(existsSync(path));
});
