/**
 * Telemetry that costs nothing on the way to the prompt.
 *
 * Synchronously this only installs the hook that records each REPLServer
 * and its start time. The SDK, the exporters and the delivery processors are
 * loaded once the first shell's prompt is on screen (the turn of the event
 * loop after the shell was created), and not before: admin shells open on
 * demand, usually long after the program started its own SDK, which this one
 * then joins instead of racing it for the global registration. Session spans
 * start with the recorded start times.
 */
import type { EventEmitter } from "node:events";
import { registry } from "../instrumentation/registry.ts";
import type { ShellSession } from "../instrumentation/session.ts";
import { beginTelemetry, telemetryStarted } from "./start.ts";
import type { ShellTelemetry, ShellTelemetryOptions } from "./types.ts";

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

export function bootstrapTelemetry(options: ShellTelemetryOptions = {}): Promise<ShellTelemetry> {
  const reg = registry();
  if (telemetryStarted()) return beginTelemetry(options);
  let openGate = () => {};
  const gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });
  let opened = false;
  const open = () => {
    if (opened) return;
    opened = true;
    reg.captureListeners.delete(onCapture);
    openGate();
  };
  const onCapture = (session: ShellSession) => {
    setImmediate(() => whenTakingInput(session.server, open));
  };
  reg.captureListeners.add(onCapture);
  return beginTelemetry(options, gate);
}
