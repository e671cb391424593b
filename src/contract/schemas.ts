/**
 * Session-Buddy event schema 1.0, plus this project's additions.
 *
 * These zod schemas are the single source of truth: TypeScript types are
 * inferred from them, the MCP tool input schemas are derived from them, and
 * both the tracker server and the exporter validate with them.
 *
 * Where the real Session-Buddy (pydantic) accepts more than a naive reading of
 * its table suggests, we accept it too, because our server must accept every
 * payload it accepts: string lengths count code points (as Python does), and
 * a UUID may come hyphenated, as 32 hex digits, braced or as a `urn:uuid:`.
 * Unknown fields are dropped rather than rejected, as pydantic does.
 */
import { z } from "zod";
import { ErrorDetail } from "./errors.ts";
import { checkTimestamp } from "./isotime.ts";

export const EVENT_VERSION = "1.0";
export const COMPONENT_NAME_PATTERN = /^[a-zA-Z0-9_-]+$/;
/** The form this project emits (and most clients send); the contract accepts every form Session-Buddy does (isotime.ts). */
export const TIMESTAMP_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$/;
export const PID_MIN = 1;
export const PID_MAX = 4_194_304;
export const USERNAME_MAX = 100;
export const HOME_MAX = 500;
export const CWD_MAX = 500;

/** Length as Python's `len()` counts it: code points, not UTF-16 units. */
export function codePointLength(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

function boundedString(max: number) {
  return z.string().refine((s) => codePointLength(s) <= max, {
    message: `must be at most ${max} characters`,
    params: { constraint: `at most ${max} characters` },
  });
}

const UUID_FORMS = [
  /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i,
  /^\{([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}$/i,
  /^urn:uuid:([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i,
  /^([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{12})$/i,
];

/** Canonical lower-case hyphenated form of a version-4 RFC 4122 UUID, or null. */
export function canonicalUuidV4(value: string): string | null {
  for (const form of UUID_FORMS) {
    const m = form.exec(value);
    if (!m) continue;
    const canonical = m.slice(1, 6).join("-").toLowerCase();
    const version = canonical[14];
    const variant = canonical[19];
    if (version !== "4" || variant === undefined || !"89ab".includes(variant)) return null;
    return canonical;
  }
  return null;
}

export const UuidV4 = z
  .string()
  .refine((s) => canonicalUuidV4(s) !== null, {
    message: "must be a UUID version 4",
    params: { constraint: "a UUID version 4" },
  })
  .transform((s) => canonicalUuidV4(s) as string);

/**
 * An ISO 8601 time with a `T`, as Python 3.11's `datetime.fromisoformat`
 * reads it (Session-Buddy's rule): `2026-01-31T12:00:00.000Z`, also
 * `2026-01-31T12:00Z`, `2026-01-31T12:00:00.5+0000`, `20260131T120000Z`.
 */
export const Timestamp = z
  .string()
  .superRefine((value, ctx) => {
    const checked = checkTimestamp(value);
    if (!checked.ok) {
      ctx.addIssue({
        code: "custom",
        message: `${checked.why}; send an ISO 8601 time such as 2026-01-31T12:00:00.000Z`,
        input: value,
      });
    }
  })
  .describe("ISO 8601 date and time with a 'T', as Python 3.11's datetime.fromisoformat reads it; no zone means UTC");

export const ComponentName = z.string().regex(COMPONENT_NAME_PATTERN, {
  message: "must match ^[a-zA-Z0-9_-]+$ (letters, digits, '_' and '-', at least one)",
});

export const Pid = z
  .number()
  .int({ message: "must be an integer" })
  .min(PID_MIN, { message: `must be at least ${PID_MIN}` })
  .max(PID_MAX, { message: `must be at most ${PID_MAX}` });

/** Free-form metadata; keys and values are the caller's, kept as JSON. */
export const Metadata = z.record(z.string(), z.unknown());

/**
 * Optional fields Session-Buddy types `X | None = None`: null is the same as
 * leaving the field out, so handlers see `undefined` only.
 */
function nullable<T extends z.ZodType>(schema: T) {
  return schema
    .nullish()
    .transform((value): z.output<T> | undefined => (value === null ? undefined : (value as z.output<T> | undefined)))
    .optional();
}

/** `metadata: dict | None = None` in Session-Buddy. */
export const OptionalMetadata = nullable(Metadata);
/** `token: str | None = None` in Session-Buddy; the same in our added tools, so auth treats every tool alike. */
export const OptionalToken = nullable(z.string());

export const UserInfo = z.object({
  username: boundedString(USERNAME_MAX),
  home: boundedString(HOME_MAX),
});

export const EnvironmentInfo = z.object({
  python_version: z.string(),
  platform: z.string(),
  cwd: boundedString(CWD_MAX),
});

export const SessionStartEvent = z.object({
  event_version: z.literal(EVENT_VERSION, { message: `must be "${EVENT_VERSION}"` }),
  event_id: UuidV4,
  event_type: z.literal("session_start", { message: 'must be "session_start"' }),
  component_name: ComponentName,
  shell_type: z.string(),
  timestamp: Timestamp,
  pid: Pid,
  user: UserInfo,
  hostname: z.string(),
  environment: EnvironmentInfo,
  metadata: OptionalMetadata,
  token: OptionalToken,
});

export const SessionEndEvent = z.object({
  session_id: z.string().min(1, { message: "must not be empty" }),
  timestamp: Timestamp,
  // Session-Buddy: `event_type: str = "session_end"`; we still refuse any other value.
  event_type: z.literal("session_end", { message: 'must be "session_end"' }).default("session_end"),
  metadata: OptionalMetadata,
  token: OptionalToken,
});

export const SessionStartResult = z.object({
  session_id: z.string().nullable(),
  status: z.enum(["tracked", "error"]),
  error: z.string().optional(),
  /** Ours: true when this start's event_id was seen before and the same session is returned. */
  replayed: z.boolean().optional(),
  ...ErrorDetail,
});

export const SessionEndResult = z.object({
  session_id: z.string().nullable().optional(),
  status: z.enum(["ended", "error", "not_found"]),
  error: z.string().optional(),
  /** Ours: the session's own length (end time minus start time). */
  duration_seconds: z.number().optional(),
  ...ErrorDetail,
});

// ---- Our additions (a client uses them only after seeing them in tools/list) ----

export const SessionStatus = z.enum(["active", "ended", "abandoned"]);

export const ExitReason = z.enum([
  "exit_command",
  "eof",
  "sigint",
  "process_exit",
  "sigterm",
  "sighup",
  "uncaught_error",
  "closed",
  "abandoned",
  "unknown",
]);

export const HeartbeatEvent = z.object({
  session_id: z.string().min(1, { message: "must not be empty" }),
  timestamp: Timestamp,
  event_type: z.literal("heartbeat", { message: 'must be "heartbeat"' }).optional(),
  metadata: OptionalMetadata,
  token: OptionalToken,
});

export const HeartbeatResult = z.object({
  session_id: z.string().nullable(),
  status: z.enum(["alive", "ended", "not_found", "error"]),
  lease_expires_at: z.string().optional(),
  error: z.string().optional(),
  ...ErrorDetail,
});

export const SessionRecord = z.object({
  session_id: z.string(),
  component_name: z.string(),
  shell_type: z.string(),
  status: SessionStatus,
  hostname: z.string(),
  pid: z.number().int(),
  username: z.string(),
  home: z.string(),
  cwd: z.string(),
  platform: z.string(),
  python_version: z.string(),
  trace_id: z.string().nullable(),
  started_at: z.string(),
  last_seen_at: z.string(),
  ended_at: z.string().nullable(),
  duration_seconds: z.number().nullable(),
  exit_reason: z.string().nullable(),
  start_event_id: z.string(),
  metadata: Metadata,
  end_metadata: Metadata.nullable(),
});

export const LIST_LIMIT_DEFAULT = 50;
export const LIST_LIMIT_MAX = 500;

export const ListSessionsQuery = z.object({
  component_name: ComponentName.optional(),
  status: SessionStatus.optional(),
  hostname: z.string().optional(),
  /** Ours: any id of one session (tracker id, trace id, or the shell's local session id). */
  id: z
    .string()
    .min(1, { message: "must not be empty" })
    .max(200, { message: "must be at most 200 characters" })
    .describe("a session id (sess_…), a trace id, or the shell's local session id")
    .optional(),
  started_after: Timestamp.optional(),
  started_before: Timestamp.optional(),
  limit: z
    .number()
    .int({ message: "must be an integer" })
    .min(1, { message: "must be at least 1" })
    .max(LIST_LIMIT_MAX, { message: `must be at most ${LIST_LIMIT_MAX}` })
    .optional(),
  cursor: z.string().optional(),
  token: OptionalToken,
});

export const ListSessionsResult = z.object({
  status: z.enum(["ok", "error"]),
  sessions: z.array(SessionRecord),
  next_cursor: z.string().nullable(),
  error: z.string().optional(),
  ...ErrorDetail,
});

export const GetSessionQuery = z.object({
  session_id: z.string().min(1, { message: "must not be empty" }),
  token: OptionalToken,
});

export const GetSessionResult = z.object({
  status: z.enum(["ok", "not_found", "error"]),
  session: SessionRecord.nullable(),
  error: z.string().optional(),
  ...ErrorDetail,
});

/** Most events one `track_session_events` call may carry. */
export const BATCH_MAX = 100;

/** A start in a batch: the start event without its own token (the call has one). */
export const BatchStartItem = SessionStartEvent.omit({ token: true });
/** An end in a batch; `event_type` is required here, since it tells the two kinds apart. */
export const BatchEndItem = SessionEndEvent.omit({ token: true }).extend({
  event_type: z.literal("session_end", { message: 'must be "session_end"' }),
});

/**
 * Ours: many starts and ends in one call. The items are independent: each is
 * validated, authorised and recorded on its own, as if it came in its own
 * call, and answered in `results` at the same index. So one refused item
 * refuses nothing else, and an end must name a session a start has already
 * been answered for (it cannot lean on a start in the same batch).
 */
export const SessionEventBatch = z.object({
  events: z
    .array(z.discriminatedUnion("event_type", [BatchStartItem, BatchEndItem]))
    .min(1, { message: "must hold at least one event" })
    .max(BATCH_MAX, { message: `must hold at most ${BATCH_MAX} events` }),
  token: OptionalToken,
});

/**
 * What the tracker checks of a batch before its items: the envelope. Each
 * item is then checked alone with the start or end schema, so a malformed
 * item gets its own error result rather than failing the batch.
 */
export const SessionEventBatchEnvelope = SessionEventBatch.extend({
  events: z
    .array(z.unknown())
    .min(1, { message: "must hold at least one event" })
    .max(BATCH_MAX, { message: `must hold at most ${BATCH_MAX} events` }),
});

export const SessionEventBatchResult = z.object({
  /** "ok" when the batch was read: each item's own outcome is in `results`. */
  status: z.enum(["ok", "error"]),
  /** One per event, in the order sent: the start or end result that event would have had alone. */
  results: z.array(z.union([SessionStartResult, SessionEndResult])),
  error: z.string().optional(),
  ...ErrorDetail,
});

export type UserInfo = z.infer<typeof UserInfo>;
export type EnvironmentInfo = z.infer<typeof EnvironmentInfo>;
export type SessionStartEvent = z.infer<typeof SessionStartEvent>;
export type SessionStartEventInput = z.input<typeof SessionStartEvent>;
export type SessionEndEvent = z.infer<typeof SessionEndEvent>;
export type SessionEndEventInput = z.input<typeof SessionEndEvent>;
export type SessionStartResult = z.infer<typeof SessionStartResult>;
export type SessionEndResult = z.infer<typeof SessionEndResult>;
export type SessionStatus = z.infer<typeof SessionStatus>;
export type ExitReason = z.infer<typeof ExitReason>;
export type HeartbeatEvent = z.infer<typeof HeartbeatEvent>;
export type HeartbeatResult = z.infer<typeof HeartbeatResult>;
export type SessionRecord = z.infer<typeof SessionRecord>;
export type ListSessionsQuery = z.infer<typeof ListSessionsQuery>;
export type ListSessionsResult = z.infer<typeof ListSessionsResult>;
export type GetSessionQuery = z.infer<typeof GetSessionQuery>;
export type GetSessionResult = z.infer<typeof GetSessionResult>;
export type Metadata = z.infer<typeof Metadata>;
export type BatchStartItem = z.infer<typeof BatchStartItem>;
export type BatchEndItem = z.infer<typeof BatchEndItem>;
export type SessionEventBatch = z.infer<typeof SessionEventBatch>;
export type SessionEventBatchResult = z.infer<typeof SessionEventBatchResult>;
