/**
 * What a shell worker and its parent say to each other over IPC, and what a
 * worker reports. Types and names only: both sides import this.
 */

import { TOOL_NAMES } from "../../../src/contract/tools.ts";

/** The exporter traces each tracker call as a child of the session span, named `tools/call <tool>` (MCP conventions). */
export const START_CALL_SPAN = `tools/call ${TOOL_NAMES.start}`;
export const END_CALL_SPAN = `tools/call ${TOOL_NAMES.end}`;
/** A batch's span: linked to the span of each session it carried, each link naming the event (`shell.event.type`). */
export const BATCH_CALL_SPAN = `tools/call ${TOOL_NAMES.batch}`;

export interface WorkerConfig {
  /** Index of this worker in its fleet, for names and logs. */
  index: number;
  /** Component name of its shells. */
  component: string;
}

export type WorkerCommand =
  | { type: "open"; count: number; spreadMs: number }
  | { type: "close"; count: number; spreadMs: number }
  /** One session at a time: open, wait for the start's acknowledgement, close, wait for the end's. */
  | { type: "sequence"; count: number; timeoutMs: number }
  | { type: "finish"; timeoutMs: number };

export type WorkerMessage =
  | { type: "ready"; pid: number }
  | { type: "opened"; open: number }
  | { type: "closed"; open: number }
  | { type: "sequenced"; done: number }
  | { type: "report"; report: WorkerReport }
  | { type: "failed"; error: string };

/** One shell session as the worker saw it. Times are epoch milliseconds (sub-millisecond precision). */
export interface SessionTrace {
  localSessionId: string;
  traceId: string;
  spanId: string;
  spanStart: number;
  spanEnd: number | null;
  startAck: number | null;
  endAck: number | null;
  /** Successful tracker answers for this session's start and end (more than one each: a resend the tracker de-duplicated). */
  startAnswers: number;
  endAnswers: number;
}

export interface WorkerReport {
  index: number;
  pid: number;
  sessions: SessionTrace[];
  /** The exporter's own `shell.emissions` counter, per event type and outcome. */
  emissions: Record<string, number>;
  /** Failed tracker calls seen (each retried or spooled by the exporter). */
  failedCalls: number;
  /** True when every session's start and end were acknowledged before the finish timeout. */
  settled: boolean;
}
