/**
 * What one call to the tracker carries and what its answer means, for one
 * event or a batch of them: pure functions, so the sender keeps to retries,
 * the breaker, connections and spans.
 */
import {
  BATCH_MAX,
  type CallToolResultLike,
  parseToolResult,
  SessionEndResult,
  SessionStartResult,
  TOOL_NAMES,
} from "../contract/index.ts";
import { classifyError, DeliveryFailure, fromResultError } from "./errors.ts";
import type { Delivered, Job } from "./jobs.ts";

/** Most events in one `track_session_events` call (the contract allows BATCH_MAX). */
export const BATCH_EVENTS = Math.min(50, BATCH_MAX);
/**
 * Most bytes of events in one call: under the 64 KiB a tracker takes from a
 * caller it has not authenticated by header, so a batch is never refused for
 * its size where its events one by one would not be.
 */
export const BATCH_BYTES = 48 * 1024;

/** An acknowledged event, with the session id the tracker gave a start. */
export function acknowledged(trackerSessionId: string | undefined): Delivered {
  return { ok: true, ...(trackerSessionId !== undefined ? { trackerSessionId } : {}) };
}

/** The arguments of a job's event, as a batch carries them: with its event_type, and an end with its session id. */
export function eventArguments(job: Job): Record<string, unknown> {
  const payload = job.payload() as Record<string, unknown>;
  if (job.kind === "start") return { ...payload };
  return { ...payload, event_type: "session_end", session_id: job.session.trackerSessionId };
}

/**
 * What the tracker's answer to one event means: the session id for a
 * tracked start, nothing for an ended session; a thrown DeliveryFailure or
 * ContractError (classified by the caller) otherwise.
 */
export function answerFor(job: Job, result: CallToolResultLike): string | undefined {
  if (job.kind === "start") {
    const tool = TOOL_NAMES.start;
    const parsed = parseToolResult(result, SessionStartResult, tool);
    if (parsed.status === "tracked" && typeof parsed.session_id === "string" && parsed.session_id !== "") {
      return parsed.session_id;
    }
    throw fromResultError(parsed.code, parsed.error, tool);
  }
  const tool = TOOL_NAMES.end;
  const parsed = parseToolResult(result, SessionEndResult, tool);
  if (parsed.status === "ended") return undefined;
  if (parsed.status === "not_found") {
    throw new DeliveryFailure(
      "rejected",
      "not_found",
      `${tool}: the tracker does not know session ${job.session.trackerSessionId}`,
    );
  }
  throw fromResultError(parsed.code, parsed.error, tool);
}

/** One event's answer, with a failure classified rather than thrown. */
export async function settleItem(answer: () => Promise<string | undefined>): Promise<Delivered> {
  try {
    return acknowledged(await answer());
  } catch (error) {
    return { ok: false, failure: classifyError(error) };
  }
}

/** Splits jobs, in order, into calls of at most BATCH_EVENTS events and BATCH_BYTES of them. */
export function byteBoundedCalls(jobs: Job[]): Job[][] {
  const calls: Job[][] = [];
  let call: Job[] = [];
  let bytes = 0;
  for (const job of jobs) {
    const size = Buffer.byteLength(JSON.stringify(job.payload()));
    if (call.length > 0 && (call.length >= BATCH_EVENTS || bytes + size > BATCH_BYTES)) {
      calls.push(call);
      call = [];
      bytes = 0;
    }
    call.push(job);
    bytes += size;
  }
  if (call.length > 0) calls.push(call);
  return calls;
}

/** Why an event was not sent: delivery of it was stopped (parked, exiting). */
export function stoppedFailure(): DeliveryFailure {
  return new DeliveryFailure("aborted", "aborted", "delivery was stopped");
}
