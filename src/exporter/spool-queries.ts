/**
 * The spool's reads and writes of single rows, on an open connection: the
 * Spool class runs them (the writes in a transaction), on the file now at the
 * path, and handles damage and full disks.
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import type { SalvageRecord, SpoolRow, SpoolState, SpoolStats, StartWhereabouts } from "./spool.ts";

const MAPPING_RETENTION_MS = 30 * 24 * 3600 * 1000;
/** Long enough for any re-ingestion of the same events; short enough to keep the file small. */
const DELIVERED_RETENTION_MS = 7 * 24 * 3600 * 1000;

function rowOf(r: Record<string, SQLInputValue>): SpoolRow {
  return {
    seq: Number(r.seq),
    eventId: String(r.event_id),
    kind: String(r.kind),
    startEventId: String(r.start_event_id),
    trackerSessionId: r.tracker_session_id == null ? null : String(r.tracker_session_id),
    component: String(r.component),
    localSessionId: r.local_session_id == null ? null : String(r.local_session_id),
    traceId: r.trace_id == null ? null : String(r.trace_id),
    spanId: r.span_id == null ? null : String(r.span_id),
    payload: String(r.payload),
    bytes: Number(r.bytes),
    state: String(r.state),
    attempts: Number(r.attempts),
    lastError: r.last_error == null ? null : String(r.last_error),
    createdAt: Number(r.created_at),
    lastAttemptAt: r.last_attempt_at == null ? null : Number(r.last_attempt_at),
    nextAttemptAt: Number(r.next_attempt_at),
  };
}

// ---- counters ----

export function bumpCounter(db: DatabaseSync, name: string, n: number): void {
  db.prepare(
    "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
  ).run(name, n);
}

export function readCounter(db: DatabaseSync, name: string): number {
  const row = db.prepare("SELECT value FROM counters WHERE name = ?").get(name) as { value: number } | undefined;
  return Number(row?.value ?? 0);
}

// ---- events ----

export function hasEvent(db: DatabaseSync, eventId: string): boolean {
  return db.prepare("SELECT 1 AS x FROM events WHERE event_id = ?").get(eventId) !== undefined;
}

export function removeDelivered(db: DatabaseSync, eventId: string): void {
  db.prepare("DELETE FROM events WHERE event_id = ?").run(eventId);
  db.prepare("INSERT OR IGNORE INTO delivered (event_id, delivered_at) VALUES (?, ?)").run(eventId, Date.now());
}

export function removeAckedStart(db: DatabaseSync, startEventId: string, trackerSessionId: string): void {
  db.prepare("DELETE FROM events WHERE event_id = ?").run(startEventId);
  recordMapping(db, startEventId, trackerSessionId);
}

function recordMapping(db: DatabaseSync, startEventId: string, trackerSessionId: string): void {
  db.prepare(
    "INSERT INTO sessions (start_event_id, tracker_session_id, recorded_at) VALUES (?, ?, ?) ON CONFLICT(start_event_id) DO UPDATE SET tracker_session_id = excluded.tracker_session_id",
  ).run(startEventId, trackerSessionId, Date.now());
}

export function findStart(
  db: DatabaseSync,
  startEventId: string,
): { where: StartWhereabouts; trackerSessionId?: string } {
  const mapped = db
    .prepare("SELECT tracker_session_id AS s FROM sessions WHERE start_event_id = ?")
    .get(startEventId) as { s: string } | undefined;
  if (mapped) return { where: "mapped", trackerSessionId: mapped.s };
  const row = db.prepare("SELECT state FROM events WHERE event_id = ?").get(startEventId) as
    | { state: string }
    | undefined;
  if (row) return { where: row.state === "rejected" ? "rejected" : "spooled" };
  const quarantined = db.prepare("SELECT 1 AS x FROM quarantine WHERE event_id = ?").get(startEventId);
  return { where: quarantined ? "quarantined" : "unknown" };
}

export function readBatch(db: DatabaseSync, afterSeq: number, limit: number): SpoolRow[] {
  return (
    db.prepare("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?").all(afterSeq, limit) as Record<
      string,
      SQLInputValue
    >[]
  ).map(rowOf);
}

export function recordAttempt(
  db: DatabaseSync,
  seq: number,
  state: SpoolState,
  error: string,
  nextAttemptAt: number,
): void {
  db.prepare(
    "UPDATE events SET attempts = attempts + 1, state = ?, last_error = ?, last_attempt_at = ?, next_attempt_at = ? WHERE seq = ?",
  ).run(state, error, Date.now(), nextAttemptAt, seq);
}

export function quarantineRow(db: DatabaseSync, seq: number, reason: string): void {
  db.prepare(
    `INSERT INTO quarantine (seq, event_id, kind, start_event_id, payload, reason, moved_at)
     SELECT seq, event_id, kind, start_event_id, payload, ?, ? FROM events WHERE seq = ?`,
  ).run(reason, Date.now(), seq);
  db.prepare("DELETE FROM events WHERE seq = ?").run(seq);
}

export function countEvents(db: DatabaseSync): number {
  return Number((db.prepare("SELECT COUNT(*) AS n FROM events").get() as { n: number }).n);
}

/** All the stats but the lost count, which the Spool adds to with the losses its file could not take. */
export function readStats(db: DatabaseSync): Omit<SpoolStats, "lost"> {
  const byState = db.prepare("SELECT state, COUNT(*) AS n FROM events GROUP BY state").all() as {
    state: string;
    n: number;
  }[];
  const totals = db.prepare("SELECT COALESCE(SUM(bytes), 0) AS b, MIN(created_at) AS oldest FROM events").get() as {
    b: number;
    oldest: number | null;
  };
  const quarantined = db.prepare("SELECT COUNT(*) AS n FROM quarantine").get() as { n: number };
  const salvaged = readCounter(db, "salvaged");
  let pending = 0;
  let rejected = 0;
  for (const { state, n } of byState) {
    if (state === "rejected") rejected += Number(n);
    else pending += Number(n);
  }
  return {
    pending,
    rejected,
    quarantined: Number(quarantined.n),
    salvaged,
    bytes: Number(totals.b),
    oldestCreatedAt: totals.oldest == null ? null : Number(totals.oldest),
  };
}

export function listQuarantined(
  db: DatabaseSync,
  limit: number,
): { eventId: string | null; kind: string | null; reason: string; movedAt: number }[] {
  return (
    db.prepare("SELECT event_id, kind, reason, moved_at FROM quarantine ORDER BY moved_at DESC LIMIT ?").all(limit) as {
      event_id: string | null;
      kind: string | null;
      reason: string;
      moved_at: number;
    }[]
  ).map((r) => ({ eventId: r.event_id, kind: r.kind, reason: r.reason, movedAt: Number(r.moved_at) }));
}

export function listSalvages(db: DatabaseSync, limit: number): SalvageRecord[] {
  return (
    db.prepare("SELECT at, aside, salvaged, lost, reason FROM salvages ORDER BY at DESC LIMIT ?").all(limit) as {
      at: number;
      aside: string;
      salvaged: number;
      lost: number | null;
      reason: string;
    }[]
  ).map((r) => ({
    at: Number(r.at),
    aside: r.aside,
    salvaged: Number(r.salvaged),
    lost: r.lost === null ? null : Number(r.lost),
    reason: r.reason,
  }));
}

export function pruneExpired(db: DatabaseSync, now: number): void {
  db.prepare(
    "DELETE FROM sessions WHERE recorded_at < ? AND start_event_id NOT IN (SELECT start_event_id FROM events)",
  ).run(now - MAPPING_RETENTION_MS);
  db.prepare("DELETE FROM delivered WHERE delivered_at < ?").run(now - DELIVERED_RETENTION_MS);
}
