/**
 * The `SessionStore` operations, written once over a small `SqlDatabase`
 * adapter that each dialect provides (connection, transactions, row locking,
 * DDL). What each operation decides comes from records.ts; the SQL text from
 * sql.ts.
 */
import type { HeartbeatEvent, SessionEndEvent, SessionRecord, SessionStartEvent } from "../contract/schemas.ts";
import {
  encodeCursor,
  endFacts,
  eventIdTaken,
  newestFirst,
  newSessionValues,
  planEnd,
  planHeartbeat,
  type SessionPatch,
  type SessionRow,
  type SqlValue,
  startEventId,
  startLogValues,
  storableText,
  toRecord,
} from "./records.ts";
import {
  APPLIED_MIGRATIONS_SQL,
  COUNT_ACTIVE_SQL,
  COUNT_EVENTS_SQL,
  expireLeasesSql,
  healthProbeSql,
  insertEventSql,
  insertSessionSql,
  listSessionsSql,
  type Migration,
  type Placeholder,
  pendingMigrations,
  recordMigrationSql,
  sessionByIdSql,
  sessionByStartEventSql,
  updateSessionSql,
} from "./sql.ts";
import type { EndOutcome, HeartbeatOutcome, ListPage, SessionStore, StartOutcome } from "./types.ts";

export type Row = Record<string, unknown>;

export interface SqlExecutor {
  /** Runs one parameterised statement; returns its rows (none for most writes). */
  rows(sql: string, params?: readonly SqlValue[]): Promise<Row[]>;
  /** Runs a script of statements without parameters (DDL). */
  script(sql: string): Promise<void>;
}

export interface SqlDatabase extends SqlExecutor {
  readonly kind: SessionStore["kind"];
  readonly location: string;
  readonly placeholder: Placeholder;
  /** Appended to a SELECT of the row a transaction is about to change, where the dialect needs it. */
  readonly lockRowSuffix: string;
  /** Run at the start of the migration transaction so concurrent migrators take turns; null when the transaction itself serialises them. */
  readonly migrationLockSql: string | null;
  readonly migrationsTableSql: string;
  readonly migrations: readonly Migration[];
  /** Runs `work` in one transaction: committed if it returns, rolled back if it throws. */
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

async function firstRow(db: SqlExecutor, sql: string, params: readonly SqlValue[]): Promise<SessionRow | undefined> {
  return (await db.rows(sql, params))[0] as SessionRow | undefined;
}

export class SqlSessionStore implements SessionStore {
  readonly kind: SessionStore["kind"];
  readonly location: string;
  private readonly db: SqlDatabase;
  private readonly p: Placeholder;
  private closed = false;

  constructor(db: SqlDatabase) {
    this.db = db;
    this.kind = db.kind;
    this.location = db.location;
    this.p = db.placeholder;
  }

  async migrate(): Promise<void> {
    const { db, p } = this;
    await db.transaction(async (tx) => {
      if (db.migrationLockSql !== null) await tx.rows(db.migrationLockSql);
      await tx.script(db.migrationsTableSql);
      const applied = (await tx.rows(APPLIED_MIGRATIONS_SQL)).map((row) => Number(row.version));
      for (const migration of pendingMigrations(applied, db.migrations)) {
        await tx.script(migration.sql);
        await tx.rows(recordMigrationSql(p), [migration.version, migration.name, new Date().toISOString()]);
      }
    });
  }

  /**
   * A replay (same event_id, same component) finds the first start's row and
   * writes nothing. Under concurrent replays the database's unique constraint
   * picks one winner; the others wait for it, skip the insert and read its
   * row. The lookup is scoped to the caller's component: another component's
   * event id is a clash, answered without a word about that session.
   */
  async recordStart(event: SessionStartEvent, receivedAt: Date): Promise<StartOutcome> {
    const { p } = this;
    const values = newSessionValues(event, receivedAt);
    return this.db.transaction(async (tx): Promise<StartOutcome> => {
      const inserted = await firstRow(tx, insertSessionSql(p), values);
      if (inserted === undefined) {
        const existing = await firstRow(tx, sessionByStartEventSql(p), [startEventId(event)]);
        if (existing === undefined) throw new Error("start event recorded but its session is missing");
        const session = toRecord(existing);
        if (session.component_name !== storableText(event.component_name)) throw eventIdTaken("event_id");
        return { session, created: false };
      }
      const session = toRecord(inserted);
      await this.appendEvent(tx, startLogValues(event, session.session_id, receivedAt), "event_id");
      return { session, created: true };
    });
  }

  /** Appends to the event log; an id another event holds aborts the transaction (nothing is written). */
  private async appendEvent(tx: SqlExecutor, values: readonly SqlValue[], field: string): Promise<void> {
    const appended = await tx.rows(insertEventSql(this.p), values);
    if (appended.length === 0) throw eventIdTaken(field);
  }

  async recordEnd(event: SessionEndEvent, receivedAt: Date): Promise<EndOutcome> {
    // Checked before any row is read: an impossible time changes nothing.
    const end = endFacts(event, receivedAt);
    const sessionId = storableText(event.session_id);
    return this.db.transaction(async (tx): Promise<EndOutcome> => {
      const plan = planEnd(await this.lockedSession(tx, sessionId), end);
      if (plan.kind === "not_found") return { status: "not_found" };
      if (plan.kind === "already_ended") return { status: "ended", session: plan.session, alreadyEnded: true };
      const session = await this.update(tx, sessionId, plan.patch);
      // The end's id is the client's metadata.event_id when it sent one.
      await this.appendEvent(tx, plan.log, "metadata.event_id");
      return { status: "ended", session, alreadyEnded: false };
    });
  }

  // Heartbeats only refresh the lease: they are not events of the session's life, so the event log does not keep them.
  async recordHeartbeat(event: HeartbeatEvent, receivedAt: Date): Promise<HeartbeatOutcome> {
    const sessionId = storableText(event.session_id);
    return this.db.transaction(async (tx): Promise<HeartbeatOutcome> => {
      const plan = planHeartbeat(await this.lockedSession(tx, sessionId), receivedAt);
      if (plan.kind === "not_found") return { status: "not_found" };
      if (plan.kind === "ended") return { status: "ended", session: plan.session };
      const session = await this.update(tx, sessionId, plan.patch);
      return { status: "alive", session, revived: plan.revived };
    });
  }

  /** The session row, locked against other writers until the transaction ends. `sessionId` is storable text. */
  private lockedSession(tx: SqlExecutor, sessionId: string): Promise<SessionRow | undefined> {
    return firstRow(tx, `${sessionByIdSql(this.p)}${this.db.lockRowSuffix}`, [sessionId]);
  }

  private async update(tx: SqlExecutor, sessionId: string, patch: SessionPatch): Promise<SessionRecord> {
    const { sql, params } = updateSessionSql(patch, this.p);
    const row = await firstRow(tx, sql, [...params, sessionId]);
    // The row is locked by this transaction, so it cannot have vanished.
    if (row === undefined) throw new Error("session row vanished during its own update");
    return toRecord(row);
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const row = await firstRow(this.db, sessionByIdSql(this.p), [storableText(sessionId)]);
    return row === undefined ? undefined : toRecord(row);
  }

  async listSessions(query: Parameters<SessionStore["listSessions"]>[0]): Promise<ListPage> {
    const { sql, params, limit } = listSessionsSql(query, this.p);
    const found = (await this.db.rows(sql, params)).map((row) => toRecord(row as SessionRow));
    const sessions = found.slice(0, limit);
    const last = sessions.at(-1);
    return { sessions, nextCursor: found.length > limit && last ? encodeCursor(last) : null };
  }

  async expireLeases(cutoff: Date): Promise<SessionRecord[]> {
    const changed = await this.db.rows(expireLeasesSql(this.p), [cutoff.toISOString()]);
    return changed.map((row) => toRecord(row as SessionRow)).sort(newestFirst);
  }

  private async count(sql: string): Promise<number> {
    // PostgreSQL's count(*) is a bigint, which pg returns as a string.
    return Number((await this.db.rows(sql))[0]?.n ?? 0);
  }

  async countActive(): Promise<number> {
    return this.count(COUNT_ACTIVE_SQL);
  }

  async countEvents(): Promise<number> {
    return this.count(COUNT_EVENTS_SQL);
  }

  async ping(): Promise<void> {
    await this.db.rows("SELECT 1");
  }

  async probeWrite(probe: string, at: Date): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.rows(healthProbeSql(this.p), [storableText(probe), at.toISOString()]);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.close();
  }
}
