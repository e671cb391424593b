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
 *
 * The Spool class holds the connection; its statements are in spool-queries.ts,
 * spool-put.ts and spool-lease.ts, the opening of the file in spool-schema.ts
 * and its salvage in spool-repair.ts.
 */
import { mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { isDamage, isFull, SpoolFullError } from "./spool-errors.ts";
import { acquireDrainLease, releaseDrainLease } from "./spool-lease.ts";
import { putEvents } from "./spool-put.ts";
import {
  bumpCounter,
  countEvents,
  findStart,
  hasEvent,
  listQuarantined,
  listSalvages,
  pruneExpired,
  quarantineRow,
  readBatch,
  readCounter,
  readStats,
  recordAttempt,
  removeAckedStart,
  removeDelivered,
} from "./spool-queries.ts";
import { openConnection, salvageAndConnect } from "./spool-repair.ts";
import { type Connection, replaced, rollback } from "./spool-schema.ts";

export { SpoolFullError } from "./spool-errors.ts";

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

export interface OpenSpoolOptions {
  limits: SpoolLimits;
  /** Told when a damaged spool file was salvaged, or when a loss could not be counted in the file. */
  onWarning?: (message: string) => void;
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
    this.#conn = openConnection(path, warn);
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

  #reconnect(damage?: unknown): void {
    try {
      this.#conn.db.close();
    } catch {
      // Closing a connection to a damaged file may fail too.
    }
    this.#conn =
      damage === undefined ? openConnection(this.path, this.#warn) : salvageAndConnect(this.path, damage, this.#warn);
  }

  /**
   * Runs one operation: on the file now at the path, salvaging it and running
   * the operation again when SQLite reports it damaged. A full disk becomes
   * a SpoolFullError.
   */
  #run<T>(op: (db: DatabaseSync) => T): T {
    if (this.#closed) throw new Error(`the spool ${this.path} is closed`);
    try {
      if (replaced(this.path, this.#conn)) this.#reconnect();
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
        if (replaced(this.path, this.#conn)) {
          // Salvaged by another process while this one waited for the lock: write to the fresh file.
          rollback(db);
          this.#reconnect();
          return this.#tx(run);
        }
        const result = run(db);
        if (this.#unrecordedLost > 0) this.#countLost(db, this.#unrecordedLost);
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
      return this.#tx((db) => {
        const result = putEvents(db, inputs, this.#limits);
        if (result.lost.length > 0) this.#countLost(db, result.lost.length);
        return result;
      });
    } catch (error) {
      if (!(error instanceof SpoolFullError)) throw error;
      this.#countUnwritable(inputs.length, error);
      return { stored: [], delivered: [], lost: inputs.map((input) => ({ input, reason: error.message })) };
    }
  }

  /** Counts events lost elsewhere (e.g. when the spool could not be opened). Never throws: a loss is never dropped. */
  addLost(n: number): void {
    try {
      this.#tx((db) => this.#countLost(db, n));
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

  #countLost(db: DatabaseSync, n: number): void {
    bumpCounter(db, "lost", n);
    this.#readLost(db);
  }

  #readLost(db = this.#conn.db): void {
    this.#recordedLost = readCounter(db, "lost");
  }

  has(eventId: string): boolean {
    return this.#run((db) => hasEvent(db, eventId));
  }

  /** The tracker acknowledged this event: it leaves the spool, and is remembered as delivered. */
  remove(eventId: string): void {
    this.#tx((db) => removeDelivered(db, eventId));
  }

  /** A start was acknowledged: remove it and remember its session id for its end (atomically). */
  ackStart(startEventId: string, trackerSessionId: string): void {
    this.#tx((db) => removeAckedStart(db, startEventId, trackerSessionId));
  }

  /** Where a start is: still waiting here, rejected, delivered (mapped), quarantined, or unknown. One consistent read. */
  locateStart(startEventId: string): { where: StartWhereabouts; trackerSessionId?: string } {
    return this.#run((db) => findStart(db, startEventId));
  }

  /** Waiting events after `afterSeq`, oldest first. */
  batch(afterSeq: number, limit: number): SpoolRow[] {
    return this.#run((db) => readBatch(db, afterSeq, limit));
  }

  /** Records a failed attempt. */
  markAttempt(seq: number, state: SpoolState, error: string, nextAttemptAt: number): void {
    this.#tx((db) => recordAttempt(db, seq, state, error, nextAttemptAt));
  }

  /** Moves an unreadable row aside. */
  quarantine(seq: number, reason: string): void {
    this.#tx((db) => quarantineRow(db, seq, reason));
  }

  /**
   * Takes (or renews) the drain lease; false when another live owner holds it.
   * `isGone` may say that the holder has died (a dead process cannot renew), so
   * its lease need not run out first.
   */
  acquireLease(owner: string, ttlMs: number, isGone: (holder: string) => boolean = () => false): boolean {
    return this.#tx((db) => acquireDrainLease(db, owner, ttlMs, isGone));
  }

  releaseLease(owner: string): void {
    this.#tx((db) => releaseDrainLease(db, owner));
  }

  count(): number {
    return this.#run((db) => countEvents(db));
  }

  stats(): SpoolStats {
    return this.#run((db) => {
      const { pending, rejected, quarantined, salvaged, bytes, oldestCreatedAt } = readStats(db);
      this.#readLost(db);
      return { pending, rejected, quarantined, lost: this.lostKnown, salvaged, bytes, oldestCreatedAt };
    });
  }

  quarantined(limit: number): { eventId: string | null; kind: string | null; reason: string; movedAt: number }[] {
    return this.#run((db) => listQuarantined(db, limit));
  }

  /** The damaged files this spool replaced, newest first. */
  salvages(limit: number): SalvageRecord[] {
    return this.#run((db) => listSalvages(db, limit));
  }

  /** Forgets session-id mappings that no waiting event needs any more, and old delivered-end tombstones. */
  prune(now = Date.now()): void {
    this.#tx((db) => pruneExpired(db, now));
  }
}
