/**
 * Session spans as Session-Buddy 1.0 events.
 *
 * The start payload is built from the span's attributes and the host facts
 * captured when the session started; the end payload from the ended span.
 * Both go through the contract's builders, which always produce valid
 * payloads whatever the host data. Metadata carries the correlation (trace)
 * id, the span id, the runtime and our extras; the end carries a fresh
 * event_id so the tracker can de-duplicate replayed ends.
 */
import { randomUUID } from "node:crypto";
import { homedir, hostname, userInfo } from "node:os";
import type { Attributes } from "@opentelemetry/api";
import { hrTimeToMilliseconds, hrTimeToSeconds } from "@opentelemetry/core";
import type { ReadableSpan } from "@opentelemetry/sdk-trace";
import {
  buildEndEvent,
  buildStartEvent,
  ExitReason,
  type SessionEndEvent,
  type SessionStartEvent,
} from "../contract/index.ts";
import type { EndLine, StartLine } from "../journal/records.ts";
import {
  ATTR_PROCESS_INTERACTIVE,
  ATTR_SESSION_ID,
  ATTR_SHELL_ADAPTERS,
  ATTR_SHELL_COMPONENT_NAME,
  ATTR_SHELL_COMPONENT_VERSION,
  ATTR_SHELL_EVAL_COUNT,
  ATTR_SHELL_EVAL_ERROR_COUNT,
  ATTR_SHELL_EXIT_REASON,
  ATTR_SHELL_SESSION_DURATION,
  ATTR_SHELL_TYPE,
} from "../semconv.ts";

/** An end payload before the tracker's session id is known. */
export type EndPayload = Omit<SessionEndEvent, "session_id" | "token">;
export type StartPayload = Omit<SessionStartEvent, "token">;

export interface HostFacts {
  username: string | undefined;
  home: string | undefined;
  hostname: string | undefined;
  platform: string;
  cwd: string | undefined;
}

function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    // A host fact that cannot be read (no passwd entry, deleted cwd) is left out, never fatal.
    return undefined;
  }
}

/** Facts about the host at the moment a session starts (cwd can change later). */
export function captureHostFacts(): HostFacts {
  return {
    username: attempt(() => userInfo().username),
    home: attempt(() => homedir()),
    hostname: attempt(() => hostname()),
    platform: `${process.platform}-${process.arch}`,
    cwd: attempt(() => process.cwd()),
  };
}

const str = (a: Attributes, key: string): string | undefined => {
  const v = a[key];
  return typeof v === "string" && v !== "" ? v : undefined;
};
const num = (a: Attributes, key: string): number | undefined => {
  const v = a[key];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
};

export function componentOf(span: ReadableSpan): string | undefined {
  const fromResource = span.resource?.attributes?.["service.name"];
  return (
    str(span.attributes, ATTR_SHELL_COMPONENT_NAME) ??
    (typeof fromResource === "string" && !fromResource.startsWith("unknown_service") ? fromResource : undefined)
  );
}

/** Correlation metadata shared by start and end. */
function correlation(span: ReadableSpan): Record<string, unknown> {
  const { traceId, spanId } = span.spanContext();
  const local = str(span.attributes, ATTR_SESSION_ID);
  return {
    trace_id: traceId,
    correlation_id: traceId,
    span_id: spanId,
    ...(local !== undefined ? { local_session_id: local } : {}),
  };
}

export function startPayload(span: ReadableSpan, eventId: string, host: HostFacts): StartPayload {
  const a = span.attributes;
  const adapters = a[ATTR_SHELL_ADAPTERS];
  const interactive = a[ATTR_PROCESS_INTERACTIVE];
  return buildStartEvent({
    eventId,
    componentName: componentOf(span),
    shellType: str(a, ATTR_SHELL_TYPE),
    timestamp: hrTimeToMilliseconds(span.startTime),
    // Facts of this process: the span is always this process's own, and carries none of them.
    pid: process.pid,
    username: host.username,
    home: host.home,
    hostname: host.hostname,
    platform: host.platform,
    cwd: host.cwd,
    metadata: {
      ...correlation(span),
      runtime: "nodejs",
      runtime_version: process.versions.node,
      ...(str(a, ATTR_SHELL_COMPONENT_VERSION) !== undefined
        ? { component_version: str(a, ATTR_SHELL_COMPONENT_VERSION) }
        : {}),
      ...(Array.isArray(adapters) ? { adapters: adapters.filter((x) => typeof x === "string") } : {}),
      ...(typeof interactive === "boolean" ? { interactive } : {}),
      telemetry: "otel-shell-sessions",
    },
  });
}

export function endPayload(span: ReadableSpan, eventId: string = randomUUID()): EndPayload {
  const a = span.attributes;
  const reason = ExitReason.safeParse(a[ATTR_SHELL_EXIT_REASON]);
  // The span's own duration matches the start and end timestamps exactly; the attribute is the fallback.
  const own = hrTimeToSeconds(span.duration);
  const duration = Number.isFinite(own) ? own : (num(a, ATTR_SHELL_SESSION_DURATION) ?? 0);
  const built = buildEndEvent({
    sessionId: "pending",
    timestamp: hrTimeToMilliseconds(span.endTime),
    metadata: {
      event_id: eventId,
      ...correlation(span),
      duration_seconds: Math.max(0, duration),
      exit_reason: reason.success ? reason.data : "unknown",
      ...(num(a, ATTR_SHELL_EVAL_COUNT) !== undefined ? { eval_count: num(a, ATTR_SHELL_EVAL_COUNT) } : {}),
      ...(num(a, ATTR_SHELL_EVAL_ERROR_COUNT) !== undefined
        ? { eval_error_count: num(a, ATTR_SHELL_EVAL_ERROR_COUNT) }
        : {}),
    },
  });
  const { session_id: _unused, ...rest } = built;
  return rest;
}

/** Correlation metadata of a session written ahead: the same keys a span's events carry. */
function journaledCorrelation(start: StartLine): Record<string, unknown> {
  return { trace_id: start.tr, correlation_id: start.tr, span_id: start.sp, local_session_id: start.s };
}

/** The start event of a session as its journal (or the live session's write-ahead) tells it. */
export function startPayloadOf(start: StartLine): StartPayload {
  return buildStartEvent({
    eventId: start.e,
    componentName: start.c,
    shellType: start.st,
    timestamp: start.at,
    pid: start.pid,
    username: start.user,
    home: start.home,
    hostname: start.host,
    platform: start.plat,
    cwd: start.cwd,
    metadata: {
      ...journaledCorrelation(start),
      runtime: "nodejs",
      runtime_version: start.rv,
      ...(start.ver !== undefined ? { component_version: start.ver } : {}),
      ...(start.ad !== undefined ? { adapters: start.ad } : {}),
      ...(start.i !== undefined ? { interactive: start.i } : {}),
      telemetry: "otel-shell-sessions",
    },
  });
}

export function endPayloadOf(start: StartLine, end: EndLine): EndPayload {
  const reason = ExitReason.safeParse(end.r);
  const built = buildEndEvent({
    sessionId: "pending",
    timestamp: end.at,
    metadata: {
      event_id: end.e,
      ...journaledCorrelation(start),
      duration_seconds: Math.max(0, (end.at - start.at) / 1000),
      exit_reason: reason.success ? reason.data : "unknown",
      ...(end.x !== undefined ? { exit_code: end.x } : {}),
      eval_count: end.n,
      eval_error_count: end.ne,
    },
  });
  const { session_id: _unused, ...rest } = built;
  return rest;
}
