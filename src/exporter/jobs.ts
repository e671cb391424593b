/**
 * What delivery knows of a shell session and of the events it carries for
 * it. Shared by the layers of delivery (queue, sender, spool, drainer), so
 * each of them can be built and tested with the others faked.
 */
import type { Baggage, Span, TraceState } from "@opentelemetry/api";
import type { DeliveryFailure } from "./errors.ts";
import type { EndPayload, StartPayload } from "./events.ts";
import type { EventType } from "./metrics.ts";
import type { SpoolRow } from "./spool.ts";

/** What delivery knows about one shell session. */
export interface SessionRef {
  startEventId: string;
  component: string;
  localSessionId: string | undefined;
  traceId: string;
  spanId: string;
  traceFlags: number;
  traceState: TraceState | undefined;
  baggage: Baggage | undefined;
  /** The live span, while it records, to set the tracker's session id on. */
  span: Span | undefined;
  trackerSessionId: string | undefined;
  /** Where the start event is: in memory (queued or in flight), acknowledged, or in the spool. */
  start: "memory" | "acked" | "spool";
  ended: boolean;
  /**
   * Told when one of the session's events has been answered for: acknowledged
   * by the tracker, or written to the spool. The write-ahead journal keeps
   * its books with it.
   */
  settled?: (eventId: string, how: "acked" | "spooled", trackerSessionId?: string) => void;
}

export type EventKind = "start" | "end";

export interface Job {
  kind: EventKind;
  eventId: string;
  session: SessionRef;
  payload: () => StartPayload | EndPayload;
  /** A copy is in the spool (written ahead by a flush, or the job came from there); remove it on acknowledgement. */
  spooled: boolean;
  /** Off the in-memory queue: answered for, or handed to the spool. A send still in flight then only clears the copy. */
  finished: boolean;
  /** Value of the park epoch when queued: a later park stops it. */
  epoch: number;
  /** Set when the job comes from the spool. */
  row?: SpoolRow;
}

export type Delivered = { ok: true; trackerSessionId?: string } | { ok: false; failure: DeliveryFailure };

/**
 * Where delivery is in its life. "exiting" wins over "stopped": a process
 * that exits after a shutdown still spools what its exit handlers end.
 */
export type Phase = "running" | "stopped" | "exiting";

/** A job whose payload is built once, when first needed (off the shell's path). */
export function newJob(
  kind: EventKind,
  eventId: string,
  session: SessionRef,
  payload: () => StartPayload | EndPayload,
  epoch: number,
): Job {
  let built: StartPayload | EndPayload | undefined;
  return {
    kind,
    eventId,
    session,
    payload: () => {
      built ??= payload();
      return built;
    },
    spooled: false,
    finished: false,
    epoch,
  };
}

export function eventTypeOf(kind: EventKind): EventType {
  return kind === "start" ? "session_start" : "session_end";
}

/** A session is found by its span: the end of a span names it only by trace and span id. */
export function keyOf(ref: Pick<SessionRef, "traceId" | "spanId">): string {
  return `${ref.traceId}-${ref.spanId}`;
}
