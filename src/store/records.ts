/**
 * Everything both stores share except SQL: session ids, event times, what a
 * row holds and how it becomes a `SessionRecord`, the event-log entries, the
 * decisions an end or a heartbeat makes on a session row, and list cursors.
 *
 * The stores only fetch rows (under a lock) and write what these functions
 * decide, so SQLite and PostgreSQL answer the same input identically.
 */
import { randomBytes } from "node:crypto";
import { ContractError, kindOf } from "../contract/errors.ts";
import { checkTimestamp } from "../contract/isotime.ts";
import { truncateCodePoints } from "../contract/sanitize.ts";
import {
  canonicalUuidV4,
  type Metadata,
  type SessionEndEvent,
  type SessionRecord,
  type SessionStartEvent,
  type SessionStatus,
} from "../contract/schemas.ts";

// ---- ids ----

export const SESSION_ID_PREFIX = "sess_";

/** 128 random bits: unguessable, and never derived from time or component (two shells in one second must not collide). */
export function newSessionId(): string {
  return `${SESSION_ID_PREFIX}${randomBytes(16).toString("base64url")}`;
}

// ---- text and JSON the databases can hold ----

const NUL = /\u0000/g;

/**
 * PostgreSQL rejects NUL in text and jsonb and lone surrogates in jsonb, and
 * both drivers turn a lone surrogate into U+FFFD on the way in; so both
 * stores replace them with U+FFFD up front and hold the same text.
 */
export function storableText(value: string): string {
  return value.toWellFormed().replace(NUL, "\ufffd");
}

/** Keys never stored, at any depth: a credential has no business in the log or in what list/get return. */
const SECRET_KEYS = new Set(["token"]);

/** Plain JSON with storable strings and keys, and without `token` fields. */
export function storableJson(value: unknown): unknown {
  if (typeof value === "string") return storableText(value);
  if (value === null || typeof value !== "object") {
    return typeof value === "number" && !Number.isFinite(value) ? null : value;
  }
  if (Array.isArray(value)) return value.map((item) => storableJson(item) ?? null);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (SECRET_KEYS.has(key.toLowerCase()) || item === undefined) continue;
    out[storableText(key)] = storableJson(item);
  }
  return out;
}

function storableMetadata(metadata: Metadata | undefined): Metadata {
  return (storableJson(metadata ?? {}) as Metadata | null) ?? {};
}

// ---- time ----

function timeError(field: string, why: string, value: unknown): ContractError {
  return new ContractError(
    "invalid_argument",
    `${field}: ${why}; send an ISO 8601 time such as 2026-01-31T12:00:00.000Z`,
    [{ field, constraint: why, received: kindOf(value) }],
  );
}

/**
 * An event time as an instant, truncated to milliseconds: every form
 * Session-Buddy accepts (see contract/isotime.ts). A time without a zone is
 * UTC (the contract says so). Impossible dates (February 30) and year 0000
 * are refused, as Python refuses them.
 */
export function parseEventTime(field: string, value: string): Date {
  const checked = checkTimestamp(value);
  if (!checked.ok) throw timeError(field, checked.why, value);
  return checked.date;
}

/** A stored time (SQLite: ISO text; PostgreSQL: a Date from pg) as ISO 8601 UTC. */
export function isoTime(value: unknown): string {
  const date = value instanceof Date ? value : new Date(String(value));
  if (Number.isNaN(date.getTime())) throw new Error("store returned an unreadable time");
  return date.toISOString();
}

function laterOf(a: string, b: string): string {
  return Date.parse(a) >= Date.parse(b) ? a : b;
}

// ---- sessions ----

/** Columns of the `sessions` table, in the order `newSessionValues` returns them. */
export const SESSION_COLUMNS = [
  "session_id",
  "start_event_id",
  "component_name",
  "shell_type",
  "status",
  "hostname",
  "pid",
  "username",
  "home",
  "cwd",
  "platform",
  "python_version",
  "trace_id",
  "started_at",
  "last_seen_at",
  "ended_at",
  "duration_seconds",
  "exit_reason",
  "metadata",
  "end_metadata",
  "local_session_id",
] as const;

export type SessionColumn = (typeof SESSION_COLUMNS)[number];

/** A value either driver binds as-is. JSON columns are bound as JSON text; times as ISO text. */
export type SqlValue = string | number | null;

/** A `sessions` row as a driver returns it. */
export type SessionRow = Record<SessionColumn, unknown>;

const TRACE_ID = /^[0-9a-f]{32}$/;
const INVALID_TRACE_ID = "0".repeat(32);

/** The W3C trace id the shell reported (as `trace_id` or `correlation_id`), if it is one. */
export function traceIdOf(metadata: Metadata | undefined): string | null {
  for (const key of ["trace_id", "correlation_id"]) {
    const value = metadata?.[key];
    // All zeros is the W3C "invalid" trace id: it would join every unrelated session.
    if (typeof value === "string" && TRACE_ID.test(value) && value !== INVALID_TRACE_ID) return value;
  }
  return null;
}

/** Longest shell-local session id kept for lookups; longer ones are not an id a person types. */
export const LOCAL_SESSION_ID_MAX = 200;
const LOCAL_SESSION_ID = /^[A-Za-z0-9_.:{}-]+$/;

/**
 * The shell's own session id (`metadata.local_session_id`, the id its banner
 * prints), lower-cased so a lookup ignores case as UUIDs do; null when absent
 * or not an id.
 */
export function localSessionIdOf(metadata: Metadata | undefined): string | null {
  const value = metadata?.local_session_id;
  if (typeof value !== "string" || value.length > LOCAL_SESSION_ID_MAX || !LOCAL_SESSION_ID.test(value)) return null;
  return value.toLowerCase();
}

/** The start event's id as stored: the contract's canonical UUID form. */
export function startEventId(event: SessionStartEvent): string {
  return canonicalUuidV4(event.event_id) ?? event.event_id;
}

/** A new active session's column values, in `SESSION_COLUMNS` order. Throws a ContractError on an impossible timestamp. */
export function newSessionValues(event: SessionStartEvent, receivedAt: Date): SqlValue[] {
  const startedAt = parseEventTime("timestamp", event.timestamp).toISOString();
  const row: Record<SessionColumn, SqlValue> = {
    session_id: newSessionId(),
    start_event_id: startEventId(event),
    component_name: storableText(event.component_name),
    shell_type: storableText(event.shell_type),
    status: "active" satisfies SessionStatus,
    hostname: storableText(event.hostname),
    pid: event.pid,
    username: storableText(event.user.username),
    home: storableText(event.user.home),
    cwd: storableText(event.environment.cwd),
    platform: storableText(event.environment.platform),
    python_version: storableText(event.environment.python_version),
    trace_id: traceIdOf(event.metadata),
    started_at: startedAt,
    last_seen_at: receivedAt.toISOString(),
    ended_at: null,
    duration_seconds: null,
    exit_reason: null,
    metadata: JSON.stringify(storableMetadata(event.metadata)),
    end_metadata: null,
    local_session_id: localSessionIdOf(event.metadata),
  };
  return SESSION_COLUMNS.map((column) => row[column]);
}

function jsonColumn(value: unknown): Metadata | null {
  if (value === null || value === undefined) return null;
  // SQLite hands back JSON text; pg has already parsed jsonb.
  return (typeof value === "string" ? JSON.parse(value) : value) as Metadata;
}

function textOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

export function toRecord(row: SessionRow): SessionRecord {
  return {
    session_id: String(row.session_id),
    component_name: String(row.component_name),
    shell_type: String(row.shell_type),
    status: String(row.status) as SessionStatus,
    hostname: String(row.hostname),
    pid: Number(row.pid),
    username: String(row.username),
    home: String(row.home),
    cwd: String(row.cwd),
    platform: String(row.platform),
    python_version: String(row.python_version),
    trace_id: textOrNull(row.trace_id),
    started_at: isoTime(row.started_at),
    last_seen_at: isoTime(row.last_seen_at),
    ended_at: row.ended_at === null || row.ended_at === undefined ? null : isoTime(row.ended_at),
    duration_seconds:
      row.duration_seconds === null || row.duration_seconds === undefined ? null : Number(row.duration_seconds),
    exit_reason: textOrNull(row.exit_reason),
    start_event_id: String(row.start_event_id),
    metadata: jsonColumn(row.metadata) ?? {},
    end_metadata: jsonColumn(row.end_metadata),
  };
}

// ---- the event log ----

export const EVENT_COLUMNS = ["event_id", "event_type", "session_id", "received_at", "payload"] as const;

/** One append-only log row, in `EVENT_COLUMNS` order. The payload never holds a token. */
export type EventLogValues = [
  eventId: string,
  eventType: string,
  sessionId: string,
  receivedAt: string,
  payload: string,
];

export function startLogValues(event: SessionStartEvent, sessionId: string, receivedAt: Date): EventLogValues {
  const payload = storableJson({ ...event, event_id: startEventId(event) });
  return [startEventId(event), "session_start", sessionId, receivedAt.toISOString(), JSON.stringify(payload)];
}

/** The client's own id for an end (`metadata.event_id`, a UUID v4) when it sent one; else one id per session, so a session logs at most one end. */
export function endEventId(event: SessionEndEvent): string {
  const fromClient = event.metadata?.event_id;
  return (typeof fromClient === "string" ? canonicalUuidV4(fromClient) : null) ?? `end:${event.session_id}`;
}

// ---- ends and heartbeats ----

/** A change to one session row: column → new value. */
export type SessionPatch = Partial<Record<SessionColumn, SqlValue>>;

export const EXIT_REASON_MAX = 100;

/** What an end writes, worked out (and checked) before any row is touched. */
export interface EndFacts {
  endedAt: Date;
  /** The end's timestamp as sent, kept when the end is clamped to the start. */
  reportedTimestamp: string;
  exitReason: string | null;
  endMetadata: string;
  receivedAt: Date;
  log: EventLogValues;
}

export function endFacts(event: SessionEndEvent, receivedAt: Date): EndFacts {
  const reason = event.metadata?.exit_reason;
  return {
    endedAt: parseEventTime("timestamp", event.timestamp),
    reportedTimestamp: storableText(event.timestamp),
    exitReason: typeof reason === "string" ? truncateCodePoints(storableText(reason), EXIT_REASON_MAX) : null,
    endMetadata: JSON.stringify(storableMetadata(event.metadata)),
    receivedAt,
    log: [
      endEventId(event),
      "session_end",
      storableText(event.session_id),
      receivedAt.toISOString(),
      JSON.stringify(storableJson(event)),
    ],
  };
}

export type EndPlan =
  | { kind: "not_found" }
  | { kind: "already_ended"; session: SessionRecord }
  | { kind: "end"; patch: SessionPatch; log: EventLogValues };

/** Added to `end_metadata` when an end older than its start was clamped: the timestamp the shell sent. */
export const CLAMPED_END_KEY = "tracker_clamped_end_timestamp";

/**
 * An end closes exactly the named session. An abandoned one is closed too:
 * the lease gave up on it, but its real end arrived late and is the truth.
 *
 * An end stamped before its start (the shell's clock stepped back during the
 * session) is still the session's real end, so it is recorded, not refused:
 * `ended_at` is clamped to `started_at` (duration 0) and `end_metadata`
 * keeps the timestamp sent under `tracker_clamped_end_timestamp`.
 */
export function planEnd(row: SessionRow | undefined, end: EndFacts): EndPlan {
  if (row === undefined) return { kind: "not_found" };
  const session = toRecord(row);
  if (session.status === "ended") return { kind: "already_ended", session };
  const startedMs = Date.parse(session.started_at);
  const clamped = end.endedAt.getTime() < startedMs;
  const endMetadata = clamped
    ? JSON.stringify({ ...(JSON.parse(end.endMetadata) as Metadata), [CLAMPED_END_KEY]: end.reportedTimestamp })
    : end.endMetadata;
  return {
    kind: "end",
    patch: {
      status: "ended" satisfies SessionStatus,
      ended_at: clamped ? session.started_at : end.endedAt.toISOString(),
      // The session's own length on the shell's clock, never our handling time.
      duration_seconds: clamped ? 0 : (end.endedAt.getTime() - startedMs) / 1000,
      exit_reason: end.exitReason,
      end_metadata: endMetadata,
      last_seen_at: laterOf(session.last_seen_at, end.receivedAt.toISOString()),
    },
    log: end.log,
  };
}

/** The answer when an event id is already taken by another event: it says nothing about that event. */
export function eventIdTaken(field: string): ContractError {
  return new ContractError(
    "invalid_argument",
    `${field}: this event id is already used by another event; give every new event a fresh UUID version 4 (a retry of the same event may reuse its id)`,
    [{ field, constraint: "must not be the id of another event", received: "a string" }],
  );
}

/**
 * A start or end time ahead of the tracker's clock by more than `skewSeconds`
 * is refused: a far-future start would sit at the top of every list forever.
 */
export function assertNotAhead(field: string, value: string, receivedAt: Date, skewSeconds: number): void {
  const ahead = (parseEventTime(field, value).getTime() - receivedAt.getTime()) / 1000;
  if (ahead <= skewSeconds) return;
  const why = `is ${Math.round(ahead)} s ahead of the tracker's clock, more than the ${skewSeconds} s allowed; check the clock of the shell's host (NTP)`;
  throw new ContractError("invalid_argument", `${field}: ${why}`, [
    { field, constraint: `at most ${skewSeconds} s ahead of the tracker's clock`, received: "a string" },
  ]);
}

export type HeartbeatPlan =
  | { kind: "not_found" }
  | { kind: "ended"; session: SessionRecord }
  | { kind: "alive"; patch: SessionPatch; revived: boolean };

/** A heartbeat extends the lease; one for an abandoned session proves it is alive after all. */
export function planHeartbeat(row: SessionRow | undefined, receivedAt: Date): HeartbeatPlan {
  if (row === undefined) return { kind: "not_found" };
  const session = toRecord(row);
  if (session.status === "ended") return { kind: "ended", session };
  // Several server instances may disagree slightly on the time: the lease only moves forward.
  const patch: SessionPatch = { last_seen_at: laterOf(session.last_seen_at, receivedAt.toISOString()) };
  const revived = session.status === "abandoned";
  if (revived) Object.assign(patch, { status: "active" satisfies SessionStatus, exit_reason: null });
  return { kind: "alive", patch, revived };
}

/** Newest first, as `listSessions` orders. */
export function newestFirst(a: SessionRecord, b: SessionRecord): number {
  if (a.started_at !== b.started_at) return a.started_at < b.started_at ? 1 : -1;
  return a.session_id < b.session_id ? 1 : a.session_id > b.session_id ? -1 : 0;
}

// ---- list cursors ----

/** The sort key of the last row of a page. */
export interface CursorKey {
  startedAt: string;
  sessionId: string;
}

export function encodeCursor(record: SessionRecord): string {
  return Buffer.from(JSON.stringify([record.started_at, record.session_id]), "utf8").toString("base64url");
}

const BASE64URL = /^[A-Za-z0-9_-]{1,1000}$/;
/** The alphabet of the ids this store issues: nothing else can be a row's key. */
const SESSION_ID_CHARS = /^[A-Za-z0-9_-]{1,200}$/;
const ISO_MILLIS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function decodeCursor(cursor: string): CursorKey {
  const invalid = () =>
    new ContractError(
      "invalid_argument",
      "cursor: not a cursor this server issued; pass next_cursor from the previous page unchanged, or omit cursor to start at the newest session",
      [{ field: "cursor", constraint: "a next_cursor from a previous page", received: kindOf(cursor) }],
    );
  if (!BASE64URL.test(cursor)) throw invalid();
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(key) || key.length !== 2) throw invalid();
  const [startedAt, sessionId] = key as unknown[];
  if (typeof startedAt !== "string" || !ISO_MILLIS.test(startedAt)) throw invalid();
  if (Number.isNaN(Date.parse(startedAt)) || new Date(startedAt).toISOString() !== startedAt) throw invalid();
  if (typeof sessionId !== "string" || !SESSION_ID_CHARS.test(sessionId)) throw invalid();
  return { startedAt, sessionId };
}
