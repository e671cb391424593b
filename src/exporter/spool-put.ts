/**
 * Writing events into the spool (see Spool.put), inside the caller's write
 * transaction: the caller counts the events returned as lost.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { PutResult, SpoolInput, SpoolLimits } from "./spool.ts";

interface PutStatements {
  exists: StatementSync;
  learn: StatementSync;
  delivered: StatementSync;
  mapping: StatementSync;
  insert: StatementSync;
}

/** What the spool holds, kept up to date as events are written so that the bounds hold within one call. */
interface Usage {
  count: number;
  bytes: number;
}

export function putEvents(db: DatabaseSync, inputs: readonly SpoolInput[], limits: SpoolLimits): PutResult {
  const result: PutResult = { stored: [], lost: [], delivered: [] };
  const usage = readUsage(db);
  const s = prepare(db);
  const now = Date.now();
  for (const input of inputs) {
    if (s.exists.get(input.eventId)) {
      if (input.trackerSessionId) s.learn.run(input.trackerSessionId, input.eventId);
      result.stored.push(input.eventId);
      continue;
    }
    const known = s.mapping.get(input.startEventId) as { s: string } | undefined;
    if (s.delivered.get(input.eventId) || (input.kind === "start" && known)) {
      result.delivered.push(input.eventId);
      continue;
    }
    const payload = JSON.stringify(input.payload);
    const size = Buffer.byteLength(payload);
    const bound = boundReached(usage, size, limits);
    if (bound) {
      result.lost.push({ input, reason: bound });
      continue;
    }
    insertEvent(s.insert, input, known?.s, payload, size, now);
    usage.count++;
    usage.bytes += size;
    result.stored.push(input.eventId);
  }
  return result;
}

function readUsage(db: DatabaseSync): Usage {
  const usage = db.prepare("SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM events").get() as {
    n: number;
    b: number;
  };
  return { count: Number(usage.n), bytes: Number(usage.b) };
}

function prepare(db: DatabaseSync): PutStatements {
  return {
    exists: db.prepare("SELECT 1 AS x FROM events WHERE event_id = ?"),
    learn: db.prepare("UPDATE events SET tracker_session_id = COALESCE(tracker_session_id, ?) WHERE event_id = ?"),
    delivered: db.prepare("SELECT 1 AS x FROM delivered WHERE event_id = ?"),
    mapping: db.prepare("SELECT tracker_session_id AS s FROM sessions WHERE start_event_id = ?"),
    insert: db.prepare(
      `INSERT INTO events (event_id, kind, start_event_id, tracker_session_id, component, local_session_id,
         trace_id, span_id, payload, bytes, state, attempts, last_error, created_at, next_attempt_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
  };
}

/** The bound one more event of `size` bytes would go beyond, said as the reason it is lost. */
function boundReached(usage: Usage, size: number, limits: SpoolLimits): string | undefined {
  if (usage.count + 1 > limits.maxEvents) return `the spool holds its maximum of ${limits.maxEvents} events`;
  if (usage.bytes + size > limits.maxBytes) return `the spool holds its maximum of ${limits.maxBytes} bytes`;
  return undefined;
}

/** An end learns its tracker session id from its start's mapping (`knownSession`) when it does not carry one. */
function insertEvent(
  insert: StatementSync,
  input: SpoolInput,
  knownSession: string | undefined,
  payload: string,
  size: number,
  now: number,
): void {
  insert.run(
    input.eventId,
    input.kind,
    input.startEventId,
    input.trackerSessionId ?? (input.kind === "end" ? (knownSession ?? null) : null),
    input.component,
    input.localSessionId ?? null,
    input.traceId ?? null,
    input.spanId ?? null,
    payload,
    size,
    input.state ?? "pending",
    input.attempts ?? 0,
    input.lastError ?? null,
    now,
    input.nextAttemptAt ?? 0,
  );
}
