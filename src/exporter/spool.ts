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
 *   spooled by a dying process can be delivered by another one.
 * - `quarantine` holds rows that cannot be read, moved aside so they never
 *   block the rest.
 * - `counters` keeps the count of events lost to a full spool.
 * - `leases` lets one process at a time drain the spool.
 *
 * Tokens are never stored: they are added at send time.
 */
import { mkdirSync, renameSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";

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
  lost: number;
  bytes: number;
  oldestCreatedAt: number | null;
}

export interface PutResult {
  /** Event ids now in the spool (written now, or already there). */
  stored: string[];
  /** Inputs that did not fit, with the bound that was hit. */
  lost: { input: SpoolInput; reason: string }[];
}

export type StartWhereabouts = "spooled" | "rejected" | "mapped" | "quarantined" | "unknown";

const SCHEMA_VERSION = 1;
const MAPPING_RETENTION_MS = 30 * 24 * 3600 * 1000;

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
  /** Told when an unreadable spool file is moved aside. */
  onWarning?: (message: string) => void;
  /** Open an existing spool only (for `shell-sessions spool`): returns undefined when there is none. */
  mustExist?: boolean;
}

export class Spool {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #limits: SpoolLimits;
  #closed = false;

  private constructor(path: string, db: DatabaseSync, limits: SpoolLimits) {
    this.path = path;
    this.#db = db;
    this.#limits = limits;
  }

  static exists(path: string): boolean {
    try {
      return statSync(path).size > 0;
    } catch {
      return false;
    }
  }

  /** Opens (creating if needed) the spool at `path`. Synchronous; throws when the file cannot be used at all. */
  static open(path: string, options: OpenSpoolOptions): Spool {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      return Spool.#openFile(path, options.limits);
    } catch (error) {
      if (!/not a database|malformed|file is encrypted/i.test((error as Error).message)) throw error;
      // A spool file that SQLite cannot read would block every later event: keep it for inspection, start anew.
      const aside = `${path}.corrupt-${Date.now()}`;
      for (const suffix of ["", "-wal", "-shm"]) {
        try {
          renameSync(path + suffix, aside + suffix);
        } catch {
          // The -wal and -shm files may not exist.
        }
      }
      options.onWarning?.(`the spool ${path} could not be read (${(error as Error).message}); moved it to ${aside}`);
      return Spool.#openFile(path, options.limits);
    }
  }

  static #openFile(path: string, limits: SpoolLimits): Spool {
    const db = new DatabaseSync(path);
    try {
      // Wait for another process's write rather than fail: writers hold the lock for microseconds.
      db.exec("PRAGMA busy_timeout = 5000");
      db.exec("PRAGMA journal_mode = WAL");
      // FULL: a spooled event survives a power cut, not only a crash; spool writes are rare.
      db.exec("PRAGMA synchronous = FULL");
      const version = Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
      if (version < SCHEMA_VERSION) {
        db.exec("BEGIN IMMEDIATE");
        try {
          db.exec(SCHEMA);
          db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
          db.exec("COMMIT");
        } catch (error) {
          db.exec("ROLLBACK");
          throw error;
        }
      }
      return new Spool(path, db, limits);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #tx<T>(run: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = run();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      try {
        this.#db.exec("ROLLBACK");
      } catch {
        // The transaction may already be gone (e.g. after SQLITE_FULL).
      }
      throw error;
    }
  }

  /**
   * Stores events; an event already spooled keeps its row (and learns the
   * tracker session id if it did not know it). Events that would exceed a
   * bound are not stored and are returned as lost.
   */
  put(inputs: readonly SpoolInput[]): PutResult {
    const result: PutResult = { stored: [], lost: [] };
    if (inputs.length === 0) return result;
    const now = Date.now();
    this.#tx(() => {
      const usage = this.#db.prepare("SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM events").get() as {
        n: number;
        b: number;
      };
      let count = Number(usage.n);
      let bytes = Number(usage.b);
      const exists = this.#db.prepare("SELECT 1 AS x FROM events WHERE event_id = ?");
      const learn = this.#db.prepare(
        "UPDATE events SET tracker_session_id = COALESCE(tracker_session_id, ?) WHERE event_id = ?",
      );
      const insert = this.#db.prepare(
        `INSERT INTO events (event_id, kind, start_event_id, tracker_session_id, component, local_session_id,
           trace_id, span_id, payload, bytes, state, attempts, last_error, created_at, next_attempt_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const input of inputs) {
        if (exists.get(input.eventId)) {
          if (input.trackerSessionId) learn.run(input.trackerSessionId, input.eventId);
          result.stored.push(input.eventId);
          continue;
        }
        const payload = JSON.stringify(input.payload);
        const size = Buffer.byteLength(payload);
        if (count + 1 > this.#limits.maxEvents) {
          result.lost.push({ input, reason: `the spool holds its maximum of ${this.#limits.maxEvents} events` });
          continue;
        }
        if (bytes + size > this.#limits.maxBytes) {
          result.lost.push({ input, reason: `the spool holds its maximum of ${this.#limits.maxBytes} bytes` });
          continue;
        }
        insert.run(
          input.eventId,
          input.kind,
          input.startEventId,
          input.trackerSessionId ?? null,
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
      if (result.lost.length > 0) this.#bump("lost", result.lost.length);
    });
    return result;
  }

  /** Counts events lost elsewhere (e.g. when the spool could not be written at all). */
  addLost(n: number): void {
    this.#tx(() => this.#bump("lost", n));
  }

  #bump(name: string, n: number): void {
    this.#db
      .prepare(
        "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
      )
      .run(name, n);
  }

  has(eventId: string): boolean {
    return this.#db.prepare("SELECT 1 AS x FROM events WHERE event_id = ?").get(eventId) !== undefined;
  }

  /** The tracker acknowledged this event: it leaves the spool. */
  remove(eventId: string): void {
    this.#db.prepare("DELETE FROM events WHERE event_id = ?").run(eventId);
  }

  /** A start was acknowledged: remove it and remember its session id for its end (atomically). */
  ackStart(startEventId: string, trackerSessionId: string): void {
    this.#tx(() => {
      this.#db.prepare("DELETE FROM events WHERE event_id = ?").run(startEventId);
      this.#recordMapping(startEventId, trackerSessionId);
    });
  }

  /** Remember a start's session id without touching the events (its end may be spooled by another process). */
  recordMapping(startEventId: string, trackerSessionId: string): void {
    this.#recordMapping(startEventId, trackerSessionId);
  }

  #recordMapping(startEventId: string, trackerSessionId: string): void {
    this.#db
      .prepare(
        "INSERT INTO sessions (start_event_id, tracker_session_id, recorded_at) VALUES (?, ?, ?) ON CONFLICT(start_event_id) DO UPDATE SET tracker_session_id = excluded.tracker_session_id",
      )
      .run(startEventId, trackerSessionId, Date.now());
  }

  /** Where a start is: still waiting here, rejected, delivered (mapped), quarantined, or unknown. One consistent read. */
  locateStart(startEventId: string): { where: StartWhereabouts; trackerSessionId?: string } {
    const mapped = this.#db
      .prepare("SELECT tracker_session_id AS s FROM sessions WHERE start_event_id = ?")
      .get(startEventId) as { s: string } | undefined;
    if (mapped) return { where: "mapped", trackerSessionId: mapped.s };
    const row = this.#db.prepare("SELECT state FROM events WHERE event_id = ?").get(startEventId) as
      | { state: string }
      | undefined;
    if (row) return { where: row.state === "rejected" ? "rejected" : "spooled" };
    const quarantined = this.#db.prepare("SELECT 1 AS x FROM quarantine WHERE event_id = ?").get(startEventId);
    return { where: quarantined ? "quarantined" : "unknown" };
  }

  /** Waiting events after `afterSeq`, oldest first. */
  batch(afterSeq: number, limit: number): SpoolRow[] {
    return (
      this.#db.prepare("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?").all(afterSeq, limit) as Record<
        string,
        SQLInputValue
      >[]
    ).map(rowOf);
  }

  /** Records a failed attempt. */
  markAttempt(seq: number, state: SpoolState, error: string, nextAttemptAt: number): void {
    this.#db
      .prepare(
        "UPDATE events SET attempts = attempts + 1, state = ?, last_error = ?, last_attempt_at = ?, next_attempt_at = ? WHERE seq = ?",
      )
      .run(state, error, Date.now(), nextAttemptAt, seq);
  }

  /** Moves an unreadable row aside. */
  quarantine(seq: number, reason: string): void {
    this.#tx(() => {
      this.#db
        .prepare(
          `INSERT INTO quarantine (seq, event_id, kind, start_event_id, payload, reason, moved_at)
           SELECT seq, event_id, kind, start_event_id, payload, ?, ? FROM events WHERE seq = ?`,
        )
        .run(reason, Date.now(), seq);
      this.#db.prepare("DELETE FROM events WHERE seq = ?").run(seq);
    });
  }

  /**
   * Takes (or renews) the drain lease; false when another live owner holds it.
   * `isGone` may say that the holder has died (a dead process cannot renew), so
   * its lease need not run out first.
   */
  acquireLease(owner: string, ttlMs: number, isGone: (holder: string) => boolean = () => false): boolean {
    return this.#tx(() => {
      const now = Date.now();
      const held = this.#db.prepare("SELECT owner, expires_at AS e FROM leases WHERE name = ?").get(DRAIN_LEASE) as
        | { owner: string; e: number }
        | undefined;
      if (held && held.owner !== owner && Number(held.e) > now && !isGone(held.owner)) return false;
      this.#db
        .prepare(
          "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
        )
        .run(DRAIN_LEASE, owner, now + ttlMs);
      return true;
    });
  }

  releaseLease(owner: string): void {
    this.#db.prepare("DELETE FROM leases WHERE name = ? AND owner = ?").run(DRAIN_LEASE, owner);
  }

  count(): number {
    return Number((this.#db.prepare("SELECT COUNT(*) AS n FROM events").get() as { n: number }).n);
  }

  stats(): SpoolStats {
    const byState = this.#db.prepare("SELECT state, COUNT(*) AS n FROM events GROUP BY state").all() as {
      state: string;
      n: number;
    }[];
    const totals = this.#db
      .prepare("SELECT COALESCE(SUM(bytes), 0) AS b, MIN(created_at) AS oldest FROM events")
      .get() as { b: number; oldest: number | null };
    const quarantined = this.#db.prepare("SELECT COUNT(*) AS n FROM quarantine").get() as { n: number };
    const lost = this.#db.prepare("SELECT value FROM counters WHERE name = 'lost'").get() as
      | { value: number }
      | undefined;
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
      lost: Number(lost?.value ?? 0),
      bytes: Number(totals.b),
      oldestCreatedAt: totals.oldest == null ? null : Number(totals.oldest),
    };
  }

  quarantined(limit: number): { eventId: string | null; kind: string | null; reason: string; movedAt: number }[] {
    return (
      this.#db
        .prepare("SELECT event_id, kind, reason, moved_at FROM quarantine ORDER BY moved_at DESC LIMIT ?")
        .all(limit) as { event_id: string | null; kind: string | null; reason: string; moved_at: number }[]
    ).map((r) => ({ eventId: r.event_id, kind: r.kind, reason: r.reason, movedAt: Number(r.moved_at) }));
  }

  /** Forgets session-id mappings that no waiting event needs any more. */
  prune(now = Date.now()): void {
    this.#db
      .prepare(
        "DELETE FROM sessions WHERE recorded_at < ? AND start_event_id NOT IN (SELECT start_event_id FROM events)",
      )
      .run(now - MAPPING_RETENTION_MS);
  }
}
