/**
 * SQL text both dialects accept, written once. The only difference between
 * them here is how a parameter is written (`?1` in SQLite, `$1` in
 * PostgreSQL), so every builder takes a `Placeholder`. DDL, locking and
 * transactions differ and live in each store.
 */
import { LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, type ListSessionsQuery } from "../contract/schemas.ts";
import {
  decodeCursor,
  EVENT_COLUMNS,
  parseEventTime,
  SESSION_COLUMNS,
  type SessionPatch,
  type SqlValue,
  storableText,
} from "./records.ts";

/**
 * Text columns the list filters by are indexed on their first characters
 * only: a B-tree entry in PostgreSQL must fit in about 2.7 kB, and the
 * contract does not bound a hostname or a component name. 200 characters
 * are at most 800 bytes in UTF-8, and tell real values apart.
 */
export const INDEXED_PREFIX_CHARS = 200;

/** The index expression for a filtered text column (the same in both dialects' DDL and in queries). */
export function indexedPrefix(column: string): string {
  return `substr(${column}, 1, ${INDEXED_PREFIX_CHARS})`;
}

/**
 * The sessions table's indexes, the same in both dialects: one per way
 * `list` filters and orders, and the active sessions by last sighting for
 * the lease sweeper.
 */
export const SESSION_INDEXES = `
      CREATE INDEX sessions_by_start ON sessions (started_at DESC, session_id DESC);
      CREATE INDEX sessions_by_component ON sessions (${indexedPrefix("component_name")}, started_at DESC, session_id DESC);
      CREATE INDEX sessions_by_status ON sessions (status, started_at DESC, session_id DESC);
      CREATE INDEX sessions_by_hostname ON sessions (${indexedPrefix("hostname")}, started_at DESC, session_id DESC);
      CREATE INDEX sessions_active_by_last_seen ON sessions (last_seen_at) WHERE status = 'active';`;

/** The SQL for the n-th (1-based) parameter. */
export type Placeholder = (n: number) => string;

function placeholders(count: number, p: Placeholder, from = 1): string {
  return Array.from({ length: count }, (_, i) => p(from + i)).join(", ");
}

/** Inserts a session unless its start event was recorded before; returns the new row, or nothing. */
export function insertSessionSql(p: Placeholder): string {
  return `INSERT INTO sessions (${SESSION_COLUMNS.join(", ")}) VALUES (${placeholders(SESSION_COLUMNS.length, p)})
    ON CONFLICT (start_event_id) DO NOTHING RETURNING *`;
}

/**
 * Appends to the event log. An event_id already there is skipped and nothing
 * is returned, so the caller learns of the clash and rolls back: the log
 * never holds one id twice, and no write goes unlogged.
 */
export function insertEventSql(p: Placeholder): string {
  return `INSERT INTO events (${EVENT_COLUMNS.join(", ")}) VALUES (${placeholders(EVENT_COLUMNS.length, p)})
    ON CONFLICT (event_id) DO NOTHING RETURNING event_id`;
}

/**
 * The health probe's write: one row per server name, rewritten on each probe,
 * so a probe proves a committed write (disk space, permissions, a sound file)
 * without growing the store.
 */
export function healthProbeSql(p: Placeholder): string {
  return `INSERT INTO tracker_health (probe, checked_at) VALUES (${p(1)}, ${p(2)})
    ON CONFLICT (probe) DO UPDATE SET checked_at = excluded.checked_at`;
}

export function sessionByIdSql(p: Placeholder): string {
  return `SELECT * FROM sessions WHERE session_id = ${p(1)}`;
}

export function sessionByStartEventSql(p: Placeholder): string {
  return `SELECT * FROM sessions WHERE start_event_id = ${p(1)}`;
}

/** `UPDATE … RETURNING *` for a patch; the session id is the last parameter. */
export function updateSessionSql(patch: SessionPatch, p: Placeholder): { sql: string; params: SqlValue[] } {
  const entries = Object.entries(patch) as [string, SqlValue][];
  const sets = entries.map(([column], i) => `${column} = ${p(i + 1)}`).join(", ");
  return {
    sql: `UPDATE sessions SET ${sets} WHERE session_id = ${p(entries.length + 1)} RETURNING *`,
    params: entries.map(([, value]) => value),
  };
}

/**
 * One statement, so it is atomic in both databases: concurrent callers (other
 * server instances) each get back only the rows their own update changed.
 * `last_seen_at` is kept: it says when the shell was last heard from.
 */
export function expireLeasesSql(p: Placeholder): string {
  return `UPDATE sessions SET status = 'abandoned', exit_reason = 'abandoned'
    WHERE status = 'active' AND last_seen_at < ${p(1)} RETURNING *`;
}

export const COUNT_ACTIVE_SQL = "SELECT count(*) AS n FROM sessions WHERE status = 'active'";
export const COUNT_EVENTS_SQL = "SELECT count(*) AS n FROM events";

/**
 * A page of sessions, newest first by (started_at, session_id), keyset-paged:
 * the cursor is the last row's sort key, so a walk sees every row that
 * existed throughout exactly once, however rows are added meanwhile.
 *
 * `started_after` is inclusive and `started_before` exclusive, so adjacent
 * windows ([a, b) then [b, c)) neither overlap nor leave a gap.
 *
 * One more row than the limit is fetched to tell whether a next page exists.
 * Throws a ContractError on a malformed cursor or an impossible time.
 */
export function listSessionsSql(
  query: Omit<ListSessionsQuery, "token">,
  p: Placeholder,
): { sql: string; params: SqlValue[]; limit: number } {
  const where: string[] = [];
  const params: SqlValue[] = [];
  const bind = (value: SqlValue) => {
    params.push(value);
    return p(params.length);
  };
  // The prefix comparison lets the index find the rows; the full one picks the exact value.
  const equalsIndexed = (column: string, value: string) => {
    const param = bind(storableText(value));
    return `${indexedPrefix(column)} = substr(${param}, 1, ${INDEXED_PREFIX_CHARS}) AND ${column} = ${param}`;
  };
  if (query.component_name !== undefined) where.push(equalsIndexed("component_name", query.component_name));
  if (query.status !== undefined) where.push(`status = ${bind(query.status)}`);
  if (query.hostname !== undefined) where.push(equalsIndexed("hostname", query.hostname));
  if (query.id !== undefined) where.push(sessionRefCondition(query.id, bind));
  if (query.started_after !== undefined) {
    where.push(`started_at >= ${bind(parseEventTime("started_after", query.started_after).toISOString())}`);
  }
  if (query.started_before !== undefined) {
    where.push(`started_at < ${bind(parseEventTime("started_before", query.started_before).toISOString())}`);
  }
  if (query.cursor !== undefined) {
    const key = decodeCursor(query.cursor);
    where.push(`(started_at, session_id) < (${bind(key.startedAt)}, ${bind(key.sessionId)})`);
  }
  const limit = Math.min(LIST_LIMIT_MAX, Math.max(1, Math.trunc(query.limit ?? LIST_LIMIT_DEFAULT)));
  const sql = `SELECT * FROM sessions${where.length > 0 ? ` WHERE ${where.join(" AND ")}` : ""}
    ORDER BY started_at DESC, session_id DESC LIMIT ${bind(limit + 1)}`;
  return { sql, params, limit };
}

/**
 * A session named by any id a person may hold: the tracker's id (`sess_…`),
 * its trace id (the correlation id), or the shell's own local session id
 * (the id its banner prints). Trace and local ids compare case-insensitively.
 */
function sessionRefCondition(ref: string, bind: (value: SqlValue) => string): string {
  const exact = bind(storableText(ref));
  const lower = bind(storableText(ref).toLowerCase());
  return `(session_id = ${exact} OR trace_id = ${lower} OR local_session_id = ${lower})`;
}

// ---- schema migrations ----

export interface Migration {
  version: number;
  name: string;
  /** One or more statements, run in the migration's transaction. */
  sql: string;
}

export const APPLIED_MIGRATIONS_SQL = "SELECT version FROM schema_migrations ORDER BY version";

export function recordMigrationSql(p: Placeholder): string {
  return `INSERT INTO schema_migrations (version, name, applied_at) VALUES (${placeholders(3, p)})`;
}

/** The migrations still to apply, in order. Refuses a database whose schema is newer than this code. */
export function pendingMigrations(applied: readonly number[], all: readonly Migration[]): Migration[] {
  const known = Math.max(0, ...all.map((m) => m.version));
  const newest = Math.max(0, ...applied);
  if (newest > known) {
    throw new Error(
      `the store's schema is version ${newest}, newer than this version of otel-shell-sessions understands (${known}): upgrade otel-shell-sessions`,
    );
  }
  const done = new Set(applied);
  return all.filter((m) => !done.has(m.version)).sort((a, b) => a.version - b.version);
}
