/**
 * The MCP tools of the contract: names, descriptions, and input/output
 * schemas. Servers list their JSON Schemas (derived here from the zod
 * schemas, never written by hand); clients look tools up by these names.
 */
import { z } from "zod";
import { ContractError, kindOf } from "./errors.ts";
import {
  BatchEndItem,
  BatchStartItem,
  GetSessionQuery,
  GetSessionResult,
  HeartbeatEvent,
  HeartbeatResult,
  ListSessionsQuery,
  ListSessionsResult,
  SessionEndEvent,
  SessionEndResult,
  SessionEventBatch,
  SessionEventBatchEnvelope,
  SessionEventBatchResult,
  SessionStartEvent,
  SessionStartResult,
} from "./schemas.ts";

export const HealthCheckArgs = z.object({});

export const TOOL_NAMES = {
  start: "track_session_start",
  end: "track_session_end",
  health: "health_check",
  heartbeat: "heartbeat_session",
  list: "list_sessions",
  get: "get_session",
  batch: "track_session_events",
} as const;
export type ToolName = (typeof TOOL_NAMES)[keyof typeof TOOL_NAMES];

interface ToolContract {
  readonly name: ToolName;
  readonly description: string;
  readonly input: z.ZodType;
  /** Absent where the result's shape is not part of the contract (health_check). */
  readonly output?: z.ZodType;
}

export const TOOLS: Record<ToolName, ToolContract> = {
  [TOOL_NAMES.start]: {
    name: TOOL_NAMES.start,
    description:
      "Record the start of an admin shell session (Session-Buddy event schema 1.0). Idempotent per event_id: a replayed start returns the same session_id.",
    input: SessionStartEvent,
    output: SessionStartResult,
  },
  [TOOL_NAMES.end]: {
    name: TOOL_NAMES.end,
    description:
      "Record the end of the session named by session_id (from the start result). Ending twice is harmless; an unknown id answers not_found.",
    input: SessionEndEvent,
    output: SessionEndResult,
  },
  [TOOL_NAMES.health]: {
    name: TOOL_NAMES.health,
    description: "Report whether the tracker and its store are healthy.",
    input: HealthCheckArgs,
  },
  [TOOL_NAMES.heartbeat]: {
    name: TOOL_NAMES.heartbeat,
    description:
      "Extend the lease of an active session. A session with no heartbeat or end within the lease is marked abandoned.",
    input: HeartbeatEvent,
    output: HeartbeatResult,
  },
  [TOOL_NAMES.list]: {
    name: TOOL_NAMES.list,
    description:
      "List sessions, newest first, filtered by component, status, host and start time; paged with next_cursor.",
    input: ListSessionsQuery,
    output: ListSessionsResult,
  },
  [TOOL_NAMES.get]: {
    name: TOOL_NAMES.get,
    description: "Get one session by its session_id.",
    input: GetSessionQuery,
    output: GetSessionResult,
  },
  [TOOL_NAMES.batch]: {
    name: TOOL_NAMES.batch,
    description:
      "Record many session starts and ends (up to 100) in one call. Each event is handled as its own track_session_start or track_session_end call would be, and answered at its index in results; one refused event refuses nothing else. An end names a session whose start was already answered.",
    input: SessionEventBatch,
    output: SessionEventBatchResult,
  },
};

export type JsonSchemaObject = { type: "object"; [key: string]: unknown };

/** JSON Schema of a tool's arguments, as listed in tools/list. */
export function toolInputJsonSchema(name: ToolName): JsonSchemaObject {
  const schema = z.toJSONSchema(TOOLS[name].input, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  delete schema.$schema;
  return { ...schema, type: "object" };
}

export function toolOutputJsonSchema(name: ToolName): JsonSchemaObject | undefined {
  const output = TOOLS[name].output;
  if (!output) return undefined;
  const schema = z.toJSONSchema(output, { io: "output", unrepresentable: "any" }) as Record<string, unknown>;
  delete schema.$schema;
  return { ...schema, type: "object" };
}

/**
 * Validate `input` against `schema`. Returns the parsed value or throws a
 * ContractError; never throws anything else, whatever the input.
 */
export function validate<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  let result: ReturnType<S["safeParse"]>;
  try {
    result = schema.safeParse(input) as ReturnType<S["safeParse"]>;
  } catch {
    // Getters and proxies in hostile input can throw during parsing.
    throw new ContractError("invalid_argument", `invalid ${what}: could not be read as JSON data`);
  }
  if (result.success) return result.data as z.output<S>;
  throw ContractError.fromZod(what, result.error as z.ZodError, input);
}

export const validateStartEvent = (input: unknown): SessionStartEvent =>
  validate(SessionStartEvent, input, "track_session_start arguments");
export const validateEndEvent = (input: unknown): SessionEndEvent =>
  validate(SessionEndEvent, input, "track_session_end arguments");
export const validateHeartbeat = (input: unknown): HeartbeatEvent =>
  validate(HeartbeatEvent, input, "heartbeat_session arguments");
export const validateListQuery = (input: unknown): ListSessionsQuery =>
  validate(ListSessionsQuery, input, "list_sessions arguments");
export const validateGetQuery = (input: unknown): GetSessionQuery =>
  validate(GetSessionQuery, input, "get_session arguments");
/** The batch's envelope only; its items are validated one by one (validateBatchItem). */
export const validateBatchEnvelope = (input: unknown) =>
  validate(SessionEventBatchEnvelope, input, "track_session_events arguments");

/**
 * One item of a batch, as the start or end event it is (by its `event_type`),
 * with the item's place in the batch named in any error.
 */
export function validateBatchItem(
  item: unknown,
  index: number,
): { kind: "start"; event: SessionStartEvent } | { kind: "end"; event: SessionEndEvent } {
  const what = `track_session_events arguments: events[${index}]`;
  const type = item !== null && typeof item === "object" ? (item as { event_type?: unknown }).event_type : undefined;
  if (type === "session_start") return { kind: "start", event: validate(BatchStartItem, item, what) };
  if (type === "session_end") return { kind: "end", event: validate(BatchEndItem, item, what) };
  throw new ContractError("invalid_argument", `${what}: event_type must be "session_start" or "session_end"`, [
    {
      field: "event_type",
      constraint: 'must be "session_start" or "session_end"',
      received: kindOf(type),
    },
  ]);
}

/** Keys of `params._meta` that carry W3C trace context across MCP. */
export const TRACE_META_KEYS = ["traceparent", "tracestate", "baggage"] as const;
