/**
 * What the tracker server needs from a store. Two implementations: SQLite
 * (Node's built-in `node:sqlite`, one host) and PostgreSQL (`pg`, several
 * server instances may share one database). Both keep sessions and an
 * append-only event log whose event_id is unique.
 */
import type {
  HeartbeatEvent,
  ListSessionsQuery,
  SessionEndEvent,
  SessionRecord,
  SessionStartEvent,
} from "../contract/schemas.ts";

export interface StartOutcome {
  session: SessionRecord;
  /** False when this start's event_id was already recorded: the same session is returned, nothing is written. */
  created: boolean;
}

export type EndOutcome =
  | {
      status: "ended";
      session: SessionRecord;
      /** True when the session had been ended before (nothing was changed). */
      alreadyEnded: boolean;
    }
  | { status: "not_found" };

export type HeartbeatOutcome =
  | {
      status: "alive";
      session: SessionRecord;
      /** True when it had been marked abandoned and is active again. */
      revived: boolean;
    }
  | { status: "ended"; session: SessionRecord }
  | { status: "not_found" };

export interface ListPage {
  sessions: SessionRecord[];
  /** Opaque; pass back as `cursor` for the next page. Null on the last page. */
  nextCursor: string | null;
}

export interface SessionStore {
  readonly kind: "sqlite" | "postgres";
  /** Where the data lives, with any password removed: safe to log. */
  readonly location: string;
  /** Creates or upgrades the schema. Idempotent, and safe when several instances start at once. */
  migrate(): Promise<void>;
  /**
   * `receivedAt` is the server's clock and starts the lease; the session's own times come from the event.
   * An event time the calendar does not have (e.g. February 30) throws a ContractError (`invalid_argument`)
   * naming the field, and nothing is written; the same holds for `recordEnd`.
   */
  recordStart(event: SessionStartEvent, receivedAt: Date): Promise<StartOutcome>;
  recordEnd(event: SessionEndEvent, receivedAt: Date): Promise<EndOutcome>;
  recordHeartbeat(event: HeartbeatEvent, receivedAt: Date): Promise<HeartbeatOutcome>;
  getSession(sessionId: string): Promise<SessionRecord | undefined>;
  /**
   * Newest first by (started_at, session_id). `id` matches a session by its
   * tracker id, its trace id or the shell's local session id (see sql.ts). `started_after` is inclusive, `started_before` exclusive.
   * Throws a ContractError (`invalid_argument`) on a malformed cursor or an impossible time.
   */
  listSessions(query: Omit<ListSessionsQuery, "token">): Promise<ListPage>;
  /** Marks active sessions last seen before `cutoff` as abandoned, and returns them. */
  expireLeases(cutoff: Date): Promise<SessionRecord[]>;
  countActive(): Promise<number>;
  /** Number of rows in the event log (for tests and health). */
  countEvents(): Promise<number>;
  /** Throws when the store cannot answer a read. */
  ping(): Promise<void>;
  /**
   * Commits one small write (the row `probe` of the health table), so that a
   * full disk, a read-only or damaged file, or a database refusing writes
   * shows up as a thrown error. Throws when the write fails.
   */
  probeWrite(probe: string, at: Date): Promise<void>;
  close(): Promise<void>;
}
