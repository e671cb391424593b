/**
 * The durable local spool: events not yet acknowledged by the tracker, in one
 * SQLite file under the state dir (Node's built-in `node:sqlite`, WAL).
 *
 * The API is synchronous on purpose: that is what lets the process `exit`
 * handler, where no asynchronous work can run, still save every event.
 *
 * - `events` holds waiting events in arrival order (`seq`). An end refers to
 *   its start by the start's event_id; the tracker's session id is filled in
 *   when it is known, here or later from `sessions`.
 * - `sessions` maps a start's event_id to the tracker's session id, so an end
 *   spooled by a dying process can be delivered by another one; it also says
 *   that start was delivered.
 * - `delivered` remembers, for a week, the ends the tracker acknowledged, so
 *   that writing the same events again (a journal ingested twice) sends
 *   nothing twice.
 * - `quarantine` holds rows that cannot be read, moved aside so they never
 *   block the rest.
 * - `counters` keeps the count of events lost (`lost`), of events salvaged
 *   from damaged files (`salvaged`), and of rows in `events` (`waiting`, kept
 *   by triggers: after damage it tells how many rows the file held).
 * - `salvages` records each damaged file that was replaced, with its counts.
 * - `leases` lets one process at a time drain the spool.
 *
 * Integrity: the file is checked when opened (`PRAGMA quick_check`, about
 * 1 ms for a typical spool and 20 ms for one at its 10,000-event bound), and
 * every statement that reports a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB)
 * has the spool salvaged and the statement run again. Salvage reads every row
 * it can from the file's pages into a fresh file, keeps the damaged one aside
 * and counts what it could not read as lost (see spool-salvage.ts).
 *
 * The files are private (0600) whatever the directory's mode and the umask:
 * they hold user names, home directories and working directories.
 *
 * Tokens are never stored: they are added at send time.
 */
import {
  chmodSync,
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  type Stats,
  statfsSync,
  statSync,
} from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { type SalvagedRows, scanDatabaseFile, sortSpoolRecords, spoolRowCount } from "./spool-salvage.ts";

export type SpoolKind = "start" | "end";
export type SpoolState = "pending" | "rejected";

export interface SpoolInput {
  eventId: string;
  kind: SpoolKind;
  /** For a start, its own event_id. */
  startEventId: string;
  trackerSessionId?: string | undefined;
  component: string;
  localSessionId?: string | undefined;
  traceId?: string | undefined;
  spanId?: string | undefined;
  /** The tool arguments without `token` (and, for an end, without a known `session_id`). */
  payload: Record<string, unknown>;
  state?: SpoolState;
  attempts?: number;
  lastError?: string | undefined;
  nextAttemptAt?: number;
}

export interface SpoolRow {
  seq: number;
  eventId: string;
  kind: string;
  startEventId: string;
  trackerSessionId: string | null;
  component: string;
  localSessionId: string | null;
  traceId: string | null;
  spanId: string | null;
  payload: string;
  bytes: number;
  state: string;
  attempts: number;
  lastError: string | null;
  createdAt: number;
  lastAttemptAt: number | null;
  nextAttemptAt: number;
}

export interface SpoolLimits {
  maxEvents: number;
  maxBytes: number;
}

export interface SpoolStats {
  pending: number;
  rejected: number;
  quarantined: number;
  /** Events counted as lost: refused by a bound, not writable (full disk), or unreadable in a damaged file. */
  lost: number;
  /** Events read back from damaged files into this one. */
  salvaged: number;
  bytes: number;
  oldestCreatedAt: number | null;
}

export interface PutResult {
  /** Event ids now in the spool (written now, or already there). */
  stored: string[];
  /** Inputs that were not stored (a bound was hit, or the disk is full), with the reason; counted as lost. */
  lost: { input: SpoolInput; reason: string }[];
  /** Inputs not stored because the tracker already acknowledged them (a start with a known session id, or a delivered end). */
  delivered: string[];
}

/** One damaged spool file replaced by a fresh one. */
export interface SalvageRecord {
  at: number;
  /** Where the damaged file was kept. */
  aside: string;
  salvaged: number;
  /** Null when the damaged file did not say how many events it held (nothing of it could be read). */
  lost: number | null;
  reason: string;
}

export type StartWhereabouts = "spooled" | "rejected" | "mapped" | "quarantined" | "unknown";

const SCHEMA_VERSION = 2;
const MAPPING_RETENTION_MS = 30 * 24 * 3600 * 1000;
/** Long enough for any re-ingestion of the same events; short enough to keep the file small. */
const DELIVERED_RETENTION_MS = 7 * 24 * 3600 * 1000;

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

const DRAIN_LEASE = "drain";

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

export interface OpenSpoolOptions {
  limits: SpoolLimits;
  /** Told when a damaged spool file was salvaged, or when a loss could not be counted in the file. */
  onWarning?: (message: string) => void;
}

// ---- SQLite errors: a damaged file, a full disk ----

const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_NOTADB = 26;

function sqliteCode(error: unknown): number | undefined {
  const code = (error as { errcode?: unknown } | null)?.errcode;
  return typeof code === "number" ? code & 0xff : undefined;
}

/** `PRAGMA quick_check` found the file damaged. */
class SpoolDamagedError extends Error {}

function isDamage(error: unknown): boolean {
  const code = sqliteCode(error);
  return error instanceof SpoolDamagedError || code === SQLITE_CORRUPT || code === SQLITE_NOTADB;
}

function isFull(error: unknown): boolean {
  return sqliteCode(error) === SQLITE_FULL || (error as NodeJS.ErrnoException | null)?.code === "ENOSPC";
}

/** The disk holding the spool is full: says so, with the path, the free space and the fix. */
export class SpoolFullError extends Error {
  readonly path: string;
  constructor(path: string, cause: unknown) {
    super(
      `cannot write the spool ${path}: the disk (filesystem) holding it is full${freeSpace(path)} (${(cause as Error).message}); free space on that filesystem, or set SHELL_SESSIONS_STATE_DIR to a directory on another one`,
      { cause },
    );
    this.name = "SpoolFullError";
    this.path = path;
  }
}

function freeSpace(path: string): string {
  try {
    const fs = statfsSync(dirname(path));
    return `, ${fs.bavail * fs.bsize} of ${fs.blocks * fs.bsize} bytes free`;
  } catch {
    return "";
  }
}

// ---- files: private, checked, salvaged ----

const PRIVATE = 0o600;
const LOCK_WAIT_MS = 10_000;
const LOCK_STALE_MS = 30_000;

/** Makes `path` 0600, creating it first when `create` (SQLite would create it 0644 less the umask). */
function makePrivate(path: string, create: boolean, warn: (m: string) => void): void {
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

function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

interface Connection {
  db: DatabaseSync;
  /** The file this connection has open: another process's salvage may replace the one at the path. */
  file: Stats;
}

/** Opens the spool file, checks it and brings its schema up to date. Throws SpoolDamagedError or SQLite's error. */
function connect(path: string, warn: (m: string) => void): Connection {
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

function rollback(db: DatabaseSync): void {
  try {
    if (db.isTransaction) db.exec("ROLLBACK");
  } catch {
    // SQLite already rolled back (after SQLITE_FULL, for one): the original error is the one to report.
  }
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs `run` holding the salvage lock (a file created exclusively), so that one process at a time salvages. */
function withSalvageLock<T>(path: string, run: () => T): T {
  const lock = `${path}.salvage-lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      closeSync(openSync(lock, "wx", PRIVATE));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const held = statOf(lock);
      // A process that died while salvaging leaves its lock behind.
      if ((held && Date.now() - held.mtimeMs > LOCK_STALE_MS) || Date.now() > deadline) rmSync(lock, { force: true });
      else sleep(20);
    }
  }
  try {
    return run();
  } finally {
    rmSync(lock, { force: true });
  }
}

/**
 * Replaces the damaged file at `path` with a fresh one holding every row that
 * could be read from it; the damaged file (and its -wal, -shm) is kept aside.
 * A write lock on the damaged file, where it can still be taken, keeps other
 * processes' writes out until the swap is done.
 */
function salvageFile(path: string, reason: string, warn: (m: string) => void): SalvageRecord {
  const guard = new DatabaseSync(path);
  try {
    try {
      guard.exec("PRAGMA busy_timeout = 5000");
      guard.exec("BEGIN IMMEDIATE");
    } catch {
      // Too damaged to lock: too damaged for anyone to write either.
    }
    const rows = sortSpoolRecords(scanDatabaseFile(path, spoolRowCount).records);
    const fresh = `${path}.salvage-${process.pid}`;
    for (const suffix of ["", "-wal", "-shm"]) rmSync(fresh + suffix, { force: true });
    const aside = `${path}.corrupt-${Date.now()}`;
    const record = writeSalvaged(fresh, rows, { at: Date.now(), aside, reason }, warn);
    for (const suffix of ["-wal", "-shm"]) {
      if (statOf(path + suffix)) renameSync(path + suffix, aside + suffix);
    }
    if (statOf(path)) linkSync(path, aside);
    for (const suffix of ["-wal", "-shm"]) rmSync(fresh + suffix, { force: true });
    renameSync(fresh, path);
    for (const suffix of ["", "-wal", "-shm"]) makePrivate(aside + suffix, false, warn);
    return record;
  } finally {
    rollback(guard);
    guard.close();
  }
}

/** Writes the salvaged rows to a new spool file at `fresh`; what the damaged file held but could not be read is lost. */
function writeSalvaged(
  fresh: string,
  rows: SalvagedRows,
  about: Pick<SalvageRecord, "at" | "aside" | "reason">,
  warn: (m: string) => void,
): SalvageRecord {
  const { db } = connect(fresh, warn);
  try {
    db.exec("BEGIN IMMEDIATE");
    const insert = (sql: string, list: SQLInputValue[][]) => {
      const statement = db.prepare(sql);
      return list.reduce((n, values) => n + Number(statement.run(...values).changes), 0);
    };
    const salvaged = insert(`INSERT OR IGNORE INTO events VALUES (${Array(17).fill("?").join(", ")})`, rows.events);
    insert("INSERT OR IGNORE INTO sessions VALUES (?, ?, ?)", rows.sessions);
    insert("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?)", rows.quarantine);
    insert("INSERT OR IGNORE INTO delivered VALUES (?, ?)", rows.delivered);
    // The damaged file's own count of its rows (kept by triggers) tells how many could not be read.
    const held = rows.counters.get("waiting");
    const record: SalvageRecord = {
      ...about,
      salvaged,
      lost: held === undefined ? null : Math.max(0, held - salvaged),
    };
    insert("INSERT INTO salvages VALUES (?, ?, ?, ?, ?)", [
      ...rows.salvages,
      [record.at, record.aside, record.salvaged, record.lost, record.reason],
    ]);
    const setCounter = db.prepare(
      "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
    );
    setCounter.run("lost", (rows.counters.get("lost") ?? 0) + (record.lost ?? 0));
    setCounter.run("salvaged", (rows.counters.get("salvaged") ?? 0) + salvaged);
    db.exec("COMMIT");
    return record;
  } catch (error) {
    rollback(db);
    throw error;
  } finally {
    db.close();
  }
}

function describeSalvage(path: string, r: SalvageRecord): string {
  const lost =
    r.lost === null
      ? "how many events it held cannot be known (nothing in it says), so none are counted as lost"
      : `${r.lost} event(s) could not be read and are counted as lost`;
  return `the spool ${path} was damaged (${r.reason}): salvaged ${r.salvaged} event(s) into a fresh spool; ${lost}; the damaged file is kept at ${r.aside}`;
}

/** Spools open in this process, for the lost-events gauge (see metrics.ts). */
const openSpools = new Set<Spool>();

/** Events counted as lost by the spool files open in this process, as last read from each (one figure per file). */
export function spoolLostEvents(): number {
  const byPath = new Map<string, number>();
  for (const spool of openSpools) byPath.set(spool.path, Math.max(byPath.get(spool.path) ?? 0, spool.lostKnown));
  let total = 0;
  for (const n of byPath.values()) total += n;
  return total;
}

export class Spool {
  readonly path: string;
  readonly #limits: SpoolLimits;
  readonly #warn: (message: string) => void;
  #conn: Connection;
  #closed = false;
  /** The file's lost counter as last read. */
  #recordedLost = 0;
  /** Losses the file could not take (its disk was full): added to its counter by the next write that succeeds. */
  #unrecordedLost = 0;

  private constructor(path: string, limits: SpoolLimits, warn: (message: string) => void) {
    this.path = path;
    this.#limits = limits;
    this.#warn = warn;
    this.#conn = this.#connect();
  }

  static exists(path: string): boolean {
    try {
      return statSync(path).size > 0;
    } catch {
      return false;
    }
  }

  /**
   * Opens (creating if needed) the spool at `path`, salvaging it first when
   * it is damaged. Synchronous; throws when the file cannot be used at all
   * (a full disk: SpoolFullError).
   */
  static open(path: string, options: OpenSpoolOptions): Spool {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const spool = new Spool(path, options.limits, options.onWarning ?? (() => {}));
      openSpools.add(spool);
      spool.#readLost();
      return spool;
    } catch (error) {
      throw isFull(error) ? new SpoolFullError(path, error) : error;
    }
  }

  #connect(): Connection {
    try {
      return connect(this.path, this.#warn);
    } catch (error) {
      if (!isDamage(error)) throw error;
      return this.#salvage(error);
    }
  }

  /** Salvages the damaged file, unless another process did so meanwhile; returns a connection to the fresh one. */
  #salvage(cause: unknown): Connection {
    let record: SalvageRecord | undefined;
    const conn = withSalvageLock(this.path, () => {
      try {
        return connect(this.path, this.#warn);
      } catch (error) {
        if (!isDamage(error)) throw error;
      }
      record = salvageFile(this.path, (cause as Error).message, this.#warn);
      return connect(this.path, this.#warn);
    });
    if (record) this.#warn(describeSalvage(this.path, record));
    return conn;
  }

  /** True when another process has replaced the file at the path since this connection opened it. */
  #replaced(): boolean {
    const now = statOf(this.path);
    return now === undefined || now.ino !== this.#conn.file.ino || now.dev !== this.#conn.file.dev;
  }

  #reconnect(damage?: unknown): void {
    try {
      this.#conn.db.close();
    } catch {
      // Closing a connection to a damaged file may fail too.
    }
    this.#conn = damage === undefined ? this.#connect() : this.#salvage(damage);
  }

  /**
   * Runs one operation: on the file now at the path, salvaging it and running
   * the operation again when SQLite reports it damaged. A full disk becomes
   * a SpoolFullError.
   */
  #run<T>(op: (db: DatabaseSync) => T): T {
    if (this.#closed) throw new Error(`the spool ${this.path} is closed`);
    try {
      if (this.#replaced()) this.#reconnect();
      try {
        return op(this.#conn.db);
      } catch (error) {
        if (!isDamage(error)) throw error;
        this.#reconnect(error);
        return op(this.#conn.db);
      }
    } catch (error) {
      throw isFull(error) ? new SpoolFullError(this.path, error) : error;
    }
  }

  /** A write transaction, on the file now at the path (checked once the write lock is held). */
  #tx<T>(run: (db: DatabaseSync) => T): T {
    return this.#run((db) => {
      db.exec("BEGIN IMMEDIATE");
      try {
        if (this.#replaced()) {
          // Salvaged by another process while this one waited for the lock: write to the fresh file.
          rollback(db);
          this.#reconnect();
          return this.#tx(run);
        }
        const result = run(db);
        if (this.#unrecordedLost > 0) this.#bump(db, "lost", this.#unrecordedLost);
        db.exec("COMMIT");
        this.#unrecordedLost = 0;
        return result;
      } catch (error) {
        rollback(db);
        throw error;
      }
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Losses as last known: counted in the file, plus those the file could not take. */
  get lostKnown(): number {
    return this.#recordedLost + this.#unrecordedLost;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    openSpools.delete(this);
    try {
      this.#conn.db.close();
    } catch {
      // Already closed by a reconnection that failed (the directory was removed, say).
    }
  }

  /**
   * Stores events. Idempotent by event_id: an event already spooled keeps its
   * row (and learns the tracker session id if it did not know it); a start
   * whose session id is known, or an end the tracker acknowledged, is not
   * stored again (`delivered`). An end learns its session id from its start's
   * mapping. Events beyond a bound, or all of them when the disk is full, are
   * not stored and are returned (and counted) as lost.
   */
  put(inputs: readonly SpoolInput[]): PutResult {
    if (inputs.length === 0) return { stored: [], lost: [], delivered: [] };
    try {
      return this.#tx((db) => this.#putAll(db, inputs));
    } catch (error) {
      if (!(error instanceof SpoolFullError)) throw error;
      this.#countUnwritable(inputs.length, error);
      return { stored: [], delivered: [], lost: inputs.map((input) => ({ input, reason: error.message })) };
    }
  }

  #putAll(db: DatabaseSync, inputs: readonly SpoolInput[]): PutResult {
    const result: PutResult = { stored: [], lost: [], delivered: [] };
    const usage = db.prepare("SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM events").get() as {
      n: number;
      b: number;
    };
    let count = Number(usage.n);
    let bytes = Number(usage.b);
    const exists = db.prepare("SELECT 1 AS x FROM events WHERE event_id = ?");
    const learn = db.prepare(
      "UPDATE events SET tracker_session_id = COALESCE(tracker_session_id, ?) WHERE event_id = ?",
    );
    const delivered = db.prepare("SELECT 1 AS x FROM delivered WHERE event_id = ?");
    const mapping = db.prepare("SELECT tracker_session_id AS s FROM sessions WHERE start_event_id = ?");
    const insert = db.prepare(
      `INSERT INTO events (event_id, kind, start_event_id, tracker_session_id, component, local_session_id,
         trace_id, span_id, payload, bytes, state, attempts, last_error, created_at, next_attempt_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const now = Date.now();
    for (const input of inputs) {
      if (exists.get(input.eventId)) {
        if (input.trackerSessionId) learn.run(input.trackerSessionId, input.eventId);
        result.stored.push(input.eventId);
        continue;
      }
      const known = mapping.get(input.startEventId) as { s: string } | undefined;
      if (delivered.get(input.eventId) || (input.kind === "start" && known)) {
        result.delivered.push(input.eventId);
        continue;
      }
      const payload = JSON.stringify(input.payload);
      const size = Buffer.byteLength(payload);
      const bound =
        count + 1 > this.#limits.maxEvents
          ? `the spool holds its maximum of ${this.#limits.maxEvents} events`
          : bytes + size > this.#limits.maxBytes
            ? `the spool holds its maximum of ${this.#limits.maxBytes} bytes`
            : undefined;
      if (bound) {
        result.lost.push({ input, reason: bound });
        continue;
      }
      insert.run(
        input.eventId,
        input.kind,
        input.startEventId,
        input.trackerSessionId ?? (input.kind === "end" ? (known?.s ?? null) : null),
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
      count++;
      bytes += size;
      result.stored.push(input.eventId);
    }
    if (result.lost.length > 0) this.#bump(db, "lost", result.lost.length);
    return result;
  }

  /** Counts events lost elsewhere (e.g. when the spool could not be opened). Never throws: a loss is never dropped. */
  addLost(n: number): void {
    try {
      this.#tx((db) => this.#bump(db, "lost", n));
    } catch (error) {
      this.#countUnwritable(n, error);
    }
  }

  /** Lost events the file cannot take now: kept in memory (and in the gauge) until a write succeeds, and said in the log. */
  #countUnwritable(n: number, error: unknown): void {
    this.#unrecordedLost += n;
    this.#warn(
      `${n} lost event(s) could not be counted in the spool's lost counter either (${(error as Error).message}); this process counts them (shell.spool.lost) and adds them to the file once it can be written`,
    );
  }

  #bump(db: DatabaseSync, name: string, n: number): void {
    db.prepare(
      "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
    ).run(name, n);
    if (name === "lost") this.#readLost(db);
  }

  #readLost(db = this.#conn.db): void {
    const row = db.prepare("SELECT value FROM counters WHERE name = 'lost'").get() as { value: number } | undefined;
    this.#recordedLost = Number(row?.value ?? 0);
  }

  has(eventId: string): boolean {
    return this.#run((db) => db.prepare("SELECT 1 AS x FROM events WHERE event_id = ?").get(eventId) !== undefined);
  }

  /** The tracker acknowledged this event: it leaves the spool, and is remembered as delivered. */
  remove(eventId: string): void {
    this.#tx((db) => {
      db.prepare("DELETE FROM events WHERE event_id = ?").run(eventId);
      db.prepare("INSERT OR IGNORE INTO delivered (event_id, delivered_at) VALUES (?, ?)").run(eventId, Date.now());
    });
  }

  /** A start was acknowledged: remove it and remember its session id for its end (atomically). */
  ackStart(startEventId: string, trackerSessionId: string): void {
    this.#tx((db) => {
      db.prepare("DELETE FROM events WHERE event_id = ?").run(startEventId);
      recordMapping(db, startEventId, trackerSessionId);
    });
  }

  /** Where a start is: still waiting here, rejected, delivered (mapped), quarantined, or unknown. One consistent read. */
  locateStart(startEventId: string): { where: StartWhereabouts; trackerSessionId?: string } {
    return this.#run((db) => {
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
    });
  }

  /** Waiting events after `afterSeq`, oldest first. */
  batch(afterSeq: number, limit: number): SpoolRow[] {
    return this.#run((db) =>
      (
        db.prepare("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?").all(afterSeq, limit) as Record<
          string,
          SQLInputValue
        >[]
      ).map(rowOf),
    );
  }

  /** Records a failed attempt. */
  markAttempt(seq: number, state: SpoolState, error: string, nextAttemptAt: number): void {
    this.#tx((db) =>
      db
        .prepare(
          "UPDATE events SET attempts = attempts + 1, state = ?, last_error = ?, last_attempt_at = ?, next_attempt_at = ? WHERE seq = ?",
        )
        .run(state, error, Date.now(), nextAttemptAt, seq),
    );
  }

  /** Moves an unreadable row aside. */
  quarantine(seq: number, reason: string): void {
    this.#tx((db) => {
      db.prepare(
        `INSERT INTO quarantine (seq, event_id, kind, start_event_id, payload, reason, moved_at)
         SELECT seq, event_id, kind, start_event_id, payload, ?, ? FROM events WHERE seq = ?`,
      ).run(reason, Date.now(), seq);
      db.prepare("DELETE FROM events WHERE seq = ?").run(seq);
    });
  }

  /**
   * Takes (or renews) the drain lease; false when another live owner holds it.
   * `isGone` may say that the holder has died (a dead process cannot renew), so
   * its lease need not run out first.
   */
  acquireLease(owner: string, ttlMs: number, isGone: (holder: string) => boolean = () => false): boolean {
    return this.#tx((db) => {
      const now = Date.now();
      const held = db.prepare("SELECT owner, expires_at AS e FROM leases WHERE name = ?").get(DRAIN_LEASE) as
        | { owner: string; e: number }
        | undefined;
      if (held && held.owner !== owner && Number(held.e) > now && !isGone(held.owner)) return false;
      db.prepare(
        "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
      ).run(DRAIN_LEASE, owner, now + ttlMs);
      return true;
    });
  }

  releaseLease(owner: string): void {
    this.#tx((db) => db.prepare("DELETE FROM leases WHERE name = ? AND owner = ?").run(DRAIN_LEASE, owner));
  }

  count(): number {
    return this.#run((db) => Number((db.prepare("SELECT COUNT(*) AS n FROM events").get() as { n: number }).n));
  }

  stats(): SpoolStats {
    return this.#run((db) => {
      const byState = db.prepare("SELECT state, COUNT(*) AS n FROM events GROUP BY state").all() as {
        state: string;
        n: number;
      }[];
      const totals = db.prepare("SELECT COALESCE(SUM(bytes), 0) AS b, MIN(created_at) AS oldest FROM events").get() as {
        b: number;
        oldest: number | null;
      };
      const quarantined = db.prepare("SELECT COUNT(*) AS n FROM quarantine").get() as { n: number };
      const salvaged = db.prepare("SELECT value FROM counters WHERE name = 'salvaged'").get() as
        | { value: number }
        | undefined;
      this.#readLost(db);
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
        lost: this.lostKnown,
        salvaged: Number(salvaged?.value ?? 0),
        bytes: Number(totals.b),
        oldestCreatedAt: totals.oldest == null ? null : Number(totals.oldest),
      };
    });
  }

  quarantined(limit: number): { eventId: string | null; kind: string | null; reason: string; movedAt: number }[] {
    return this.#run((db) =>
      (
        db
          .prepare("SELECT event_id, kind, reason, moved_at FROM quarantine ORDER BY moved_at DESC LIMIT ?")
          .all(limit) as {
          event_id: string | null;
          kind: string | null;
          reason: string;
          moved_at: number;
        }[]
      ).map((r) => ({ eventId: r.event_id, kind: r.kind, reason: r.reason, movedAt: Number(r.moved_at) })),
    );
  }

  /** The damaged files this spool replaced, newest first. */
  salvages(limit: number): SalvageRecord[] {
    return this.#run((db) =>
      (
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
      })),
    );
  }

  /** Forgets session-id mappings that no waiting event needs any more, and old delivered-end tombstones. */
  prune(now = Date.now()): void {
    this.#tx((db) => {
      db.prepare(
        "DELETE FROM sessions WHERE recorded_at < ? AND start_event_id NOT IN (SELECT start_event_id FROM events)",
      ).run(now - MAPPING_RETENTION_MS);
      db.prepare("DELETE FROM delivered WHERE delivered_at < ?").run(now - DELIVERED_RETENTION_MS);
    });
  }
}

function recordMapping(db: DatabaseSync, startEventId: string, trackerSessionId: string): void {
  db.prepare(
    "INSERT INTO sessions (start_event_id, tracker_session_id, recorded_at) VALUES (?, ?, ?) ON CONFLICT(start_event_id) DO UPDATE SET tracker_session_id = excluded.tracker_session_id",
  ).run(startEventId, trackerSessionId, Date.now());
}
