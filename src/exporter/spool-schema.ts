/**
 * Opening the spool file: private, checked, and with its schema brought up
 * to date (the tables are described in spool.ts).
 */
import { chmodSync, closeSync, openSync, type Stats, statSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { isFull, SpoolDamagedError } from "./spool-errors.ts";

const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  start_event_id TEXT NOT NULL,
  tracker_session_id TEXT,
  component TEXT NOT NULL,
  local_session_id TEXT,
  trace_id TEXT,
  span_id TEXT,
  payload TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  last_attempt_at INTEGER,
  next_attempt_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_start ON events(start_event_id);
CREATE TABLE IF NOT EXISTS sessions (
  start_event_id TEXT PRIMARY KEY,
  tracker_session_id TEXT NOT NULL,
  recorded_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
  seq INTEGER,
  event_id TEXT,
  kind TEXT,
  start_event_id TEXT,
  payload TEXT,
  reason TEXT NOT NULL,
  moved_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_by_event ON quarantine(event_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS delivered (event_id TEXT PRIMARY KEY, delivered_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS salvages (
  at INTEGER NOT NULL, aside TEXT NOT NULL, salvaged INTEGER NOT NULL, lost INTEGER, reason TEXT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('waiting', (SELECT COUNT(*) FROM events))
  ON CONFLICT(name) DO UPDATE SET value = excluded.value;
CREATE TRIGGER IF NOT EXISTS events_in AFTER INSERT ON events
  BEGIN UPDATE counters SET value = value + 1 WHERE name = 'waiting'; END;
CREATE TRIGGER IF NOT EXISTS events_out AFTER DELETE ON events
  BEGIN UPDATE counters SET value = value - 1 WHERE name = 'waiting'; END;
`;

// ---- files: private, checked, up to date ----

export const PRIVATE = 0o600;

/** Makes `path` 0600, creating it first when `create` (SQLite would create it 0644 less the umask). */
export function makePrivate(path: string, create: boolean, warn: (m: string) => void): void {
  try {
    if (create) closeSync(openSync(path, "a", PRIVATE));
    chmodSync(path, PRIVATE);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !create) return;
    if (isFull(error)) throw error;
    warn(`cannot make ${path} private (mode 0600): ${(error as Error).message}`);
  }
}

export function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

export interface Connection {
  db: DatabaseSync;
  /** The file this connection has open: another process's salvage may replace the one at the path. */
  file: Stats;
}

/** Opens the spool file, checks it and brings its schema up to date. Throws SpoolDamagedError or SQLite's error. */
export function connect(path: string, warn: (m: string) => void): Connection {
  makePrivate(path, true, warn);
  const db = new DatabaseSync(path);
  try {
    // Wait for another process's write rather than fail: writers hold the lock for microseconds.
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec("PRAGMA journal_mode = WAL");
    // FULL: a spooled event survives a power cut, not only a crash; spool writes are rare.
    db.exec("PRAGMA synchronous = FULL");
    // Delivered events' user names and directories are overwritten, and freed pages hold no old rows to resurrect.
    db.exec("PRAGMA secure_delete = ON");
    const problems = (db.prepare("PRAGMA quick_check").all() as { quick_check: string }[])
      .map((r) => r.quick_check)
      .filter((m) => m !== "ok");
    if (problems.length > 0) throw new SpoolDamagedError(`PRAGMA quick_check: ${problems.slice(0, 3).join("; ")}`);
    migrate(db);
    // SQLite gives these the main file's mode; an older spool's may predate that.
    for (const suffix of ["-wal", "-shm"]) makePrivate(path + suffix, false, warn);
    return { db, file: statSync(path) };
  } catch (error) {
    db.close();
    throw error;
  }
}

function migrate(db: DatabaseSync): void {
  const version = Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
  if (version >= SCHEMA_VERSION) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(SCHEMA);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec("COMMIT");
  } catch (error) {
    rollback(db);
    throw error;
  }
}

export function rollback(db: DatabaseSync): void {
  try {
    if (db.isTransaction) db.exec("ROLLBACK");
  } catch {
    // SQLite already rolled back (after SQLITE_FULL, for one): the original error is the one to report.
  }
}

/** True when another process has replaced the file at `path` since `conn` opened it. */
export function replaced(path: string, conn: Connection): boolean {
  const now = statOf(path);
  return now === undefined || now.ino !== conn.file.ino || now.dev !== conn.file.dev;
}
