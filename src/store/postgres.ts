/**
 * The shared store: PostgreSQL through a `pg` pool. Several server instances
 * may use one database at once, so every write is race-free on its own:
 *
 * - a start is `INSERT … ON CONFLICT (start_event_id) DO NOTHING RETURNING`,
 *   and a replay reads the winner's row back (READ COMMITTED: the conflicting
 *   insert waits for the other transaction, then the read sees its commit);
 * - an end or a heartbeat locks the session row (`FOR UPDATE`) before
 *   deciding, so two of them on one session apply one after the other;
 * - lease expiry is one UPDATE, whose row locks hand each session to exactly
 *   one caller;
 * - migrations run under a transaction-scoped advisory lock.
 */
import pg from "pg";
import { LOCAL_SESSION_ID_MAX, type SqlValue } from "./records.ts";
import { type Migration, type Placeholder, SESSION_INDEXES } from "./sql.ts";
import { type Row, type SqlDatabase, type SqlExecutor, SqlSessionStore } from "./sql-store.ts";

/** Advisory lock key for migrations: any fixed 64-bit number other software is unlikely to pick ("otelshse"). */
const MIGRATION_LOCK_KEY = "8031155551975535461";

export const POSTGRES_POOL_SIZE = 10;
/** Default for each of: connecting, waiting for a pooled connection, and one statement. */
export const DEFAULT_STORE_TIMEOUT_MS = 4000;

export interface PostgresOptions {
  /** Bounds connecting, waiting for a free pooled connection, and each statement (client and server side). */
  timeoutMs?: number;
}

/*
 * session_id sorts bytewise (COLLATE "C"), as in SQLite, so both stores page
 * in the same order whatever the database's locale.
 */
const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "sessions and event log",
    sql: `
      CREATE TABLE sessions (
        session_id text COLLATE "C" PRIMARY KEY,
        start_event_id text NOT NULL UNIQUE,
        component_name text NOT NULL,
        shell_type text NOT NULL,
        status text NOT NULL CHECK (status IN ('active', 'ended', 'abandoned')),
        hostname text NOT NULL,
        pid integer NOT NULL,
        username text NOT NULL,
        home text NOT NULL,
        cwd text NOT NULL,
        platform text NOT NULL,
        python_version text NOT NULL,
        trace_id text,
        started_at timestamptz NOT NULL,
        last_seen_at timestamptz NOT NULL,
        ended_at timestamptz,
        duration_seconds double precision,
        exit_reason text,
        metadata jsonb NOT NULL,
        end_metadata jsonb
      );
      ${SESSION_INDEXES}

      CREATE TABLE events (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id text NOT NULL UNIQUE,
        event_type text NOT NULL,
        session_id text COLLATE "C" NOT NULL REFERENCES sessions (session_id),
        received_at timestamptz NOT NULL,
        payload jsonb NOT NULL
      );
      CREATE INDEX events_by_session ON events (session_id);
    `,
  },
  {
    version: 2,
    name: "lookup by trace and local session id; health probe",
    sql: `
      ALTER TABLE sessions ADD COLUMN local_session_id text;
      UPDATE sessions SET local_session_id = lower(metadata->>'local_session_id')
        WHERE jsonb_typeof(metadata->'local_session_id') = 'string'
          AND length(metadata->>'local_session_id') <= ${LOCAL_SESSION_ID_MAX};
      CREATE INDEX sessions_by_trace ON sessions (trace_id) WHERE trace_id IS NOT NULL;
      CREATE INDEX sessions_by_local_id ON sessions (local_session_id) WHERE local_session_id IS NOT NULL;
      CREATE TABLE tracker_health (probe text PRIMARY KEY, checked_at timestamptz NOT NULL);
    `,
  },
];

/** The connection URL without its password (in the userinfo or a `password` parameter): safe to log. */
export function redactPostgresUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = "";
    parsed.searchParams.delete("password");
    return parsed.toString();
  } catch {
    return "postgres://(unparseable URL)";
  }
}

class PostgresDatabase implements SqlDatabase {
  readonly kind = "postgres";
  readonly location: string;
  readonly placeholder: Placeholder = (n) => `$${n}`;
  readonly lockRowSuffix = " FOR UPDATE";
  // Held to the end of the migration transaction: instances starting together migrate one at a time.
  readonly migrationLockSql = `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
  readonly migrationsTableSql = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL
  )`;
  readonly migrations = MIGRATIONS;
  private readonly pool: pg.Pool;

  constructor(url: string, options: PostgresOptions = {}) {
    this.location = redactPostgresUrl(url);
    const timeoutMs = Math.round(options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS);
    this.pool = new pg.Pool({
      connectionString: url,
      max: POSTGRES_POOL_SIZE,
      application_name: "otel-shell-sessions",
      // Times come back in UTC whatever the server's default zone (a connection string's own `options` win).
      // The server-side limits free the database from work nobody waits for any more.
      options: `-c TimeZone=UTC -c statement_timeout=${timeoutMs} -c lock_timeout=${timeoutMs} -c idle_in_transaction_session_timeout=${4 * timeoutMs}`,
      // A database that accepts the TCP connection but never answers (stopped, overloaded) fails in bounded time:
      // connecting and waiting for a pooled connection...
      connectionTimeoutMillis: timeoutMs,
      // ...and each statement, measured here, since a stopped server cannot time itself out.
      query_timeout: timeoutMs,
      keepAlive: true,
    });
    // An idle connection that dies (server restart, network) is dropped by the pool and
    // replaced on next use; without a listener its error would crash the process.
    this.pool.on("error", () => {});
  }

  async rows(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    return (await this.pool.query<Row>(sql, params as SqlValue[])).rows;
  }

  async script(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const tx: SqlExecutor = {
      rows: async (sql, params = []) => (await client.query<Row>(sql, params as SqlValue[])).rows,
      script: async (sql) => {
        await client.query(sql);
      },
    };
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const result = await work(tx);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      if (isTimeout(error)) {
        // The connection still has a statement outstanding: a ROLLBACK would only queue behind it. Discard it.
        broken = error as Error;
      } else {
        await client.query("ROLLBACK").catch((rollbackError: Error) => {
          broken = rollbackError;
        });
      }
      throw error;
    } finally {
      // A connection that could not roll back is in an unknown state: the pool discards it.
      client.release(broken);
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/** pg's own timeouts (query_timeout, connectionTimeoutMillis) reject with these messages. */
function isTimeout(error: unknown): boolean {
  return error instanceof Error && /timeout/i.test(error.message);
}

/** A store on the PostgreSQL database at `url`. Call `migrate()` before use; `openStore` does. */
export function postgresStore(url: string, options: PostgresOptions = {}): SqlSessionStore {
  return new SqlSessionStore(new PostgresDatabase(url, options));
}
