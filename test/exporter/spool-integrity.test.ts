/**
 * Spool integrity with real SQLite files: damage found on open and on write,
 * salvage of damaged, truncated and garbage files (every readable row kept,
 * the rest counted as lost), another process's handle following the fresh
 * file, private file modes, and re-ingesting the same events.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import {
  chmodSync,
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { Spool, type SpoolInput } from "../../src/exporter/spool.ts";
import { tempDir } from "./support.ts";

const LIMITS = { maxEvents: 100_000, maxBytes: 1e9 };
const GARBAGE_HEADER_SPOOL = fileURLToPath(new URL("./fixtures/garbage-header-spool.db.gz", import.meta.url));

function open(t: TestContext, path: string, warnings: string[] = []): Spool {
  const spool = Spool.open(path, { limits: LIMITS, onWarning: (m) => warnings.push(m) });
  t.after(() => spool.close());
  return spool;
}

function start(): SpoolInput {
  const id = randomUUID();
  // Payloads of about 1 KiB, as a real start's: a few rows per page.
  return {
    eventId: id,
    kind: "start",
    startEventId: id,
    component: "c",
    payload: { event_id: id, pad: "x".repeat(900) },
  };
}

function end(of: SpoolInput): SpoolInput {
  return { eventId: randomUUID(), kind: "end", startEventId: of.startEventId, component: "c", payload: { x: 1 } };
}

/** A spool file at `path` holding `n` events, checkpointed into the main file and closed. */
function filledSpool(path: string, n: number): void {
  const spool = Spool.open(path, { limits: LIMITS });
  spool.put(Array.from({ length: n }, start));
  spool.close();
  const db = new DatabaseSync(path);
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
}

function overwrite(path: string, offset: number, bytes: Buffer): void {
  const fd = openSync(path, "r+");
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

function salvagedOpen(t: TestContext, path: string) {
  const warnings: string[] = [];
  const spool = open(t, path, warnings);
  const stats = spool.stats();
  return { spool, stats, warnings, record: spool.salvages(1)[0] };
}

test("a spool damaged in the middle (header intact) is found on open and salvaged: readable rows kept, the rest lost", (t) => {
  const path = join(tempDir(t), "spool.db");
  filledSpool(path, 200);
  const size = statSync(path).size;
  overwrite(path, Math.floor(size / 2 / 4096) * 4096, Buffer.alloc(4096, 0x41));
  const { spool, stats, warnings, record } = salvagedOpen(t, path);
  assert.ok(record, "the salvage is recorded");
  assert.ok(record.salvaged > 150 && record.salvaged < 200, `salvaged ${record.salvaged} of 200`);
  assert.equal(record.lost, 200 - record.salvaged, "what could not be read is counted as lost");
  assert.equal(stats.pending, record.salvaged);
  assert.equal(stats.lost, record.lost);
  assert.equal(stats.salvaged, record.salvaged);
  assert.match(
    warnings.join("\n"),
    /was damaged \((database disk image is malformed|PRAGMA quick_check.*)\): salvaged \d+ event\(s\).*\d+ event\(s\) could not be read/,
  );
  assert.match(record.aside, /spool\.db\.corrupt-\d+$/);
  assert.equal(statSync(record.aside).size, size, "the damaged file is kept as it was");
  // The fresh spool works and keeps the order.
  spool.put([start()]);
  assert.equal(spool.count(), record.salvaged + 1);
  const seqs = spool.batch(0, 1000).map((r) => r.seq);
  assert.deepEqual(
    seqs,
    [...seqs].sort((a, b) => a - b),
  );
});

test("a truncated spool keeps the rows in the pages that survive and counts the rest as lost", (t) => {
  const path = join(tempDir(t), "spool.db");
  filledSpool(path, 200);
  truncateSync(path, Math.floor((statSync(path).size * 0.6) / 4096) * 4096);
  const { stats, record } = salvagedOpen(t, path);
  assert.ok(record);
  assert.ok(record.salvaged > 50 && record.salvaged < 200, `salvaged ${record.salvaged} of 200`);
  assert.equal(record.lost, 200 - record.salvaged);
  assert.equal(stats.lost, record.lost);
});

test("a spool whose header is garbage (SQLite: not a database) gives back every row", (t) => {
  const path = join(tempDir(t), "spool.db");
  filledSpool(path, 120);
  overwrite(path, 0, randomBytes(100));
  const { stats, record } = salvagedOpen(t, path);
  assert.deepEqual([record?.salvaged, record?.lost], [120, 0]);
  assert.equal(stats.pending, 120);
  assert.equal(stats.lost, 0);
});

test("a garbage header and pages of one long text: the page size is judged by the spool's rows, not by any record", (t) => {
  // A spool of 120 starts (900-byte pads) whose header random bytes replaced, kept from a run where
  // salvage picked 1024-byte pages: under that size the pads decoded as hundreds of bogus records, more
  // than the real rows under 4096, and salvage kept none of the 120.
  const path = join(tempDir(t), "spool.db");
  writeFileSync(path, gunzipSync(readFileSync(GARBAGE_HEADER_SPOOL)));
  const { stats, record } = salvagedOpen(t, path);
  assert.deepEqual([record?.salvaged, record?.lost], [120, 0]);
  assert.equal(stats.pending, 120);
});

test("a file of pure garbage: nothing salvaged, and the loss is said to be unknown rather than zero", (t) => {
  const dir = tempDir(t);
  const path = join(dir, "spool.db");
  writeFileSync(path, randomBytes(64 * 1024));
  const { stats, warnings, record } = salvagedOpen(t, path);
  assert.deepEqual([record?.salvaged, record?.lost], [0, null]);
  assert.equal(stats.pending, 0);
  assert.match(warnings.join("\n"), /salvaged 0 event\(s\).*how many events it held cannot be known/);
  assert.ok(readdirSync(dir).some((f) => /^spool\.db\.corrupt-\d+$/.test(f)));
});

test("damage found by a write (not on open) is salvaged, and the write goes to the fresh spool", (t) => {
  const path = join(tempDir(t), "spool.db");
  filledSpool(path, 200);
  const warnings: string[] = [];
  const spool = open(t, path, warnings);
  const other = open(t, path);
  const size = statSync(path).size;
  overwrite(path, Math.floor(size / 2 / 4096) * 4096, Buffer.alloc(4096, 0x41));
  // Another connection's commit makes this one drop its page cache, as another process's write would.
  other.acquireLease("someone", 1);
  const event = start();
  const result = spool.put([event]);
  assert.deepEqual(result.stored, [event.eventId]);
  const record = spool.salvages(1)[0];
  assert.ok(record, `salvaged on write; warnings: ${warnings.join("; ")}`);
  assert.equal(spool.count(), record.salvaged + 1);
  assert.equal(spool.stats().lost, record.lost);
  // The other handle still points at the damaged file: its next write must land in the fresh one.
  const late = start();
  other.put([late]);
  assert.equal(spool.has(late.eventId), true);
});

test("spool files are 0600 in a pre-existing 0755 directory under a permissive umask; an older 0644 spool is made private", (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const previous = process.umask(0);
  t.after(() => process.umask(previous));
  const path = join(dir, "spool.db");
  const spool = open(t, path);
  spool.put([start()]);
  for (const f of ["spool.db", "spool.db-wal", "spool.db-shm"]) {
    assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  }
  spool.close();
  chmodSync(path, 0o644);
  open(t, path).count();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o755, "the directory is left as it was");
});

test("the same events written twice are stored once; a delivered start or end is not stored again", (t) => {
  const spool = open(t, join(tempDir(t), "spool.db"));
  const s = start();
  const e = end(s);
  assert.deepEqual(spool.put([s, e]).stored, [s.eventId, e.eventId]);
  assert.deepEqual(spool.put([s, e]).stored, [s.eventId, e.eventId], "already there: stored, one row each");
  assert.equal(spool.count(), 2);

  // The start is acknowledged: ingesting it again sends nothing; its end learns the session id.
  spool.ackStart(s.eventId, "tracker-1");
  const again = spool.put([s, e]);
  assert.deepEqual(again.delivered, [s.eventId]);
  assert.deepEqual(again.stored, [e.eventId]);
  assert.equal(spool.count(), 1);

  // An end ingested for the first time after its start was acknowledged carries the session id itself.
  const s2 = start();
  spool.put([s2]);
  spool.ackStart(s2.eventId, "tracker-2");
  const e2 = end(s2);
  spool.put([e2]);
  assert.equal(spool.batch(0, 10).find((r) => r.eventId === e2.eventId)?.trackerSessionId, "tracker-2");

  // Delivered ends are remembered: a second ingestion does not resend them.
  spool.remove(e.eventId);
  spool.remove(e2.eventId);
  const third = spool.put([s, e, s2, e2]);
  assert.deepEqual(third.stored, []);
  assert.deepEqual(third.delivered.sort(), [s.eventId, e.eventId, s2.eventId, e2.eventId].sort());
  assert.equal(spool.count(), 0);
  assert.equal(spool.stats().lost, 0);
});
