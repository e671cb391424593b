/**
 * The embedded store: one SQLite file through Node's built-in `node:sqlite`.
 *
 * `node:sqlite` is synchronous and one connection has one transaction, so
 * this process runs its operations on the connection one at a time (a
 * promise queue): another call cannot slip its statements into a
 * transaction that is waiting between two of its own.
 *
 * Several processes may share the file. WAL lets readers and the writer
 * proceed together; a write transaction takes the write lock up front
 * (`BEGIN IMMEDIATE`) and waits for it up to the busy timeout, rather than
 * failing later on a lock upgrade. While it waits it blocks this process's
 * event loop: bounded by the timeout, and writes are short.
 *
 * Group commit: with `synchronous = FULL` every COMMIT waits for the disk
 * (an fsync), and that, not the SQL, bounded the tracker's ingest. The
 * transactions asked for within one turn of the event loop therefore run
 * inside one database transaction, each in its own SAVEPOINT (a failing one
 * is rolled back alone, as it would have been by itself), with one COMMIT
 * for all; each caller hears of its transaction only after that COMMIT, so
 * what is acknowledged is on disk exactly as before. A caller alone waits
 * one turn of the event loop more.
 */
import { closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { LOCAL_SESSION_ID_MAX, type SqlValue } from "./records.ts";
import { type Migration, type Placeholder, SESSION_INDEXES } from "./sql.ts";
import { type Row, type SqlDatabase, type SqlExecutor, SqlSessionStore } from "./sql-store.ts";

/** How long a write waits for another process's write to finish before failing with "database is locked". */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;

/*
 * Times are ISO 8601 UTC text with milliseconds: fixed width, so text order
 * is time order and the indexes serve the sorts. JSON columns are text.
 * Synchronous stays FULL (the default): a start the tracker acknowledged is
 * one the shell will not resend, so it must survive a power cut.
 */
const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "sessions and event log",
    sql: `
      CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        start_event_id TEXT NOT NULL UNIQUE,
        component_name TEXT NOT NULL,
        shell_type TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'ended', 'abandoned')),
        hostname TEXT NOT NULL,
        pid INTEGER NOT NULL,
        username TEXT NOT NULL,
        home TEXT NOT NULL,
        cwd TEXT NOT NULL,
        platform TEXT NOT NULL,
        python_version TEXT NOT NULL,
        trace_id TEXT,
        started_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        ended_at TEXT,
        duration_seconds REAL,
        exit_reason TEXT,
        metadata TEXT NOT NULL CHECK (json_valid(metadata)),
        end_metadata TEXT CHECK (end_metadata IS NULL OR json_valid(end_metadata))
      ) STRICT;
      ${SESSION_INDEXES}

      CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        session_id TEXT NOT NULL REFERENCES sessions (session_id),
        received_at TEXT NOT NULL,
        payload TEXT NOT NULL CHECK (json_valid(payload))
      ) STRICT;
      CREATE INDEX events_by_session ON events (session_id);
    `,
  },
  {
    version: 2,
    name: "lookup by trace and local session id; health probe",
    sql: `
      ALTER TABLE sessions ADD COLUMN local_session_id TEXT;
      UPDATE sessions SET local_session_id = lower(json_extract(metadata, '$.local_session_id'))
        WHERE json_type(metadata, '$.local_session_id') = 'text'
          AND length(json_extract(metadata, '$.local_session_id')) <= ${LOCAL_SESSION_ID_MAX};
      CREATE INDEX sessions_by_trace ON sessions (trace_id) WHERE trace_id IS NOT NULL;
      CREATE INDEX sessions_by_local_id ON sessions (local_session_id) WHERE local_session_id IS NOT NULL;
      CREATE TABLE tracker_health (probe TEXT PRIMARY KEY, checked_at TEXT NOT NULL) STRICT;
    `,
  },
];

interface GroupMember {
  work: (tx: SqlExecutor) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Creates the file owner-only (it names users and hosts), and its directory, if missing. */
function prepareFile(path: string): void {
  if (path === ":memory:" || existsSync(path)) return;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, "a", 0o600));
}

export class SqliteDatabase implements SqlDatabase {
  readonly kind = "sqlite";
  readonly location: string;
  readonly placeholder: Placeholder = (n) => `?${n}`;
  // The write lock taken by BEGIN IMMEDIATE already covers every row.
  readonly lockRowSuffix = "";
  readonly migrationLockSql = null;
  readonly migrationsTableSql = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`;
  readonly migrations = MIGRATIONS;
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();
  private queue: Promise<unknown> = Promise.resolve();
  /** Transactions waiting for the next group commit. */
  private readonly waiting: GroupMember[] = [];
  /** Statements on the connection as it is, for use inside `exclusive`. */
  private readonly direct: SqlExecutor;

  constructor(path: string) {
    prepareFile(path);
    this.location = `sqlite:${path}`;
    this.db = new DatabaseSync(path, { timeout: SQLITE_BUSY_TIMEOUT_MS, enableForeignKeyConstraints: true });
    // Persistent in the file: readers never block the writer, nor it them.
    this.db.exec("PRAGMA journal_mode = WAL");
    this.direct = {
      rows: async (sql, params = []) => this.statement(sql).all(...(params as SQLInputValue[])) as Row[],
      script: async (sql) => this.db.exec(sql),
    };
  }

  /** Prepared once per SQL text and reused. */
  private statement(sql: string): StatementSync {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs `work` when every earlier call on this connection has finished. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work);
    this.queue = result.catch(() => {});
    return result;
  }

  rows(sql: string, params?: readonly SqlValue[]): Promise<Row[]> {
    return this.exclusive(() => this.direct.rows(sql, params));
  }

  script(sql: string): Promise<void> {
    return this.exclusive(() => this.direct.script(sql));
  }

  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ work, resolve: resolve as (value: unknown) => void, reject });
      // The first of a group schedules it, after the I/O of this turn has had its chance to join.
      if (this.waiting.length === 1) setImmediate(() => void this.exclusive(() => this.commitGroup()));
    });
  }

  /** Runs every waiting transaction in one database transaction, then settles each after the COMMIT. */
  private async commitGroup(): Promise<void> {
    const group = this.waiting.splice(0);
    /** Members not told anything yet: whatever goes wrong, none of them is left waiting. */
    const untold = new Set(group);
    const tell = (member: GroupMember, outcome: { value: unknown } | { error: unknown }) => {
      untold.delete(member);
      if ("error" in outcome) member.reject(outcome.error);
      else member.resolve(outcome.value);
    };
    /** Callers whose work is in the open transaction: told once it is committed (or that it was lost). */
    let done: { member: GroupMember; value: unknown }[] = [];
    const fail = (error: unknown) => {
      for (const { member } of done) tell(member, { error });
      done = [];
    };
    try {
      for (const member of group) {
        // A failure here (the write lock did not come within the busy timeout) fails the rest of the group.
        if (!this.db.isTransaction) this.db.exec("BEGIN IMMEDIATE");
        this.db.exec("SAVEPOINT grouped");
        try {
          const value = await member.work(this.direct);
          this.db.exec("RELEASE grouped");
          done.push({ member, value });
        } catch (error) {
          if (this.db.isTransaction) {
            this.db.exec("ROLLBACK TO grouped");
            this.db.exec("RELEASE grouped");
          } else {
            // SQLite rolled the whole transaction back (disk full, I/O error): the group's earlier work is gone too.
            fail(error);
          }
          tell(member, { error });
        }
      }
      if (this.db.isTransaction) this.db.exec("COMMIT");
    } catch (error) {
      try {
        if (this.db.isTransaction) this.db.exec("ROLLBACK");
      } catch {
        // The connection itself is gone (closed under us): there is nothing to roll back.
      }
      fail(error);
      for (const member of untold) tell(member, { error });
      return;
    }
    for (const { member, value } of done) tell(member, { value });
  }

  close(): Promise<void> {
    return this.exclusive(async () => {
      this.statements.clear();
      this.db.close();
    });
  }
}

/** A store on the SQLite file at `path` (absolute, or `:memory:`). Call `migrate()` before use; `openStore` does. */
export function sqliteStore(path: string): SqlSessionStore {
  return new SqlSessionStore(new SqliteDatabase(path));
}
