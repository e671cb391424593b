/**
 * Telemetry that costs nothing on the way to the prompt.
 *
 * Synchronously this only installs the hook that records each REPLServer
 * and its start time. The SDK, the exporters and the delivery processors are
 * loaded once the first shell's prompt is on screen (the turn of the event
 * loop after the shell was created), or after `idleStartMs` if the program
 * has not opened a shell by then; session spans then start with the
 * recorded start times.
 */
import type { EventEmitter } from "node:events";
import { registry } from "../instrumentation/registry.ts";
import type { ShellSession } from "../instrumentation/session.ts";
import { beginTelemetry } from "./start.ts";
import type { ShellTelemetry, ShellTelemetryOptions } from "./types.ts";

export const IDLE_START_MS = 1000;
/** The longest a paused shell holds off the loading (a shell an application keeps paused on purpose). */
export const PAUSED_SHELL_WAIT_MS = 1000;

/**
 * Runs `then` once `shell` takes input. Node's own REPL reads its history
 * file before it does, paused meanwhile; that read takes a few turns of the
 * event loop, and with the loading in slices each of those turns would wait
 * for a slice, so what was typed at the prompt waited for several. Reading
 * the history first costs the loading a few milliseconds.
 */
function whenTakingInput(shell: EventEmitter & { paused?: boolean }, then: () => void): void {
  if (shell.paused !== true) {
    then();
    return;
  }
  const go = () => {
    clearTimeout(timer);
    shell.off("resume", go);
    // A turn later: the input that waited for the history is read before the first slice.
    setImmediate(then);
  };
  const timer = setTimeout(go, PAUSED_SHELL_WAIT_MS);
  timer.unref();
  shell.on("resume", go);
}

export function bootstrapTelemetry(
  options: ShellTelemetryOptions = {},
  { idleStartMs = IDLE_START_MS }: { idleStartMs?: number } = {},
): Promise<ShellTelemetry> {
  const reg = registry();
  if (reg.telemetry !== undefined) return beginTelemetry(options);
  let openGate = () => {};
  const gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });
  let opened = false;
  const open = () => {
    if (opened) return;
    opened = true;
    clearTimeout(idle);
    reg.captureListeners.delete(onCapture);
    openGate();
  };
  const onCapture = (session: ShellSession) => {
    setImmediate(() => whenTakingInput(session.server, open));
  };
  // Unreferenced: a program that neither opens a shell nor keeps running does not wait for telemetry.
  // Worker threads (which inherit `--import`) start it only if they open a shell themselves; asked
  // when the timer fires, as loading node:worker_threads costs a millisecond before the prompt.
  const idle = setTimeout(() => {
    if (process.getBuiltinModule("node:worker_threads").isMainThread) open();
  }, idleStartMs);
  idle.unref();
  reg.captureListeners.add(onCapture);
  return beginTelemetry(options, gate);
}
