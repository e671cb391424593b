/**
 * Starting telemetry without waiting for it: REPLs are recorded from this
 * call on (with their real start time), and the SDK is loaded in the
 * background, once `gate` opens. Light: nothing here loads OpenTelemetry.
 */
import { installCapture } from "../instrumentation/capture.ts";
import { registry } from "../instrumentation/registry.ts";
import type { ShellTelemetry, ShellTelemetryOptions } from "./types.ts";

/**
 * Starts telemetry once per process, so `--import otel-shell-sessions/register`
 * and a programmatic start never make two SDKs. A call made while an earlier
 * start is still waiting for its gate (as register's waits for the first
 * prompt) adds its options to that start (its span processors are added,
 * other settings override); once loading has begun, later calls get its
 * result unchanged.
 */
export function beginTelemetry(options: ShellTelemetryOptions = {}, gate?: Promise<void>): Promise<ShellTelemetry> {
  const reg = registry();
  installCapture();
  if (reg.telemetry === undefined) {
    reg.pendingOptions = { ...options };
    reg.telemetry = (gate ?? Promise.resolve())
      // In slices, so that the shell whose prompt opened the gate keeps answering while they load.
      .then(() => import("./slices.ts"))
      .then(({ warmUp }) => warmUp())
      .then(() => import("./sdk.ts"))
      .then(({ startSdk }) => {
        const merged = (reg.pendingOptions ?? {}) as ShellTelemetryOptions;
        reg.pendingOptions = undefined;
        return startSdk(merged);
      })
      .finally(() => {
        reg.telemetrySettled = true;
      });
  } else if (reg.pendingOptions !== undefined) {
    const pending = reg.pendingOptions as ShellTelemetryOptions;
    const spanProcessors = [...(pending.spanProcessors ?? []), ...(options.spanProcessors ?? [])];
    Object.assign(pending, options, spanProcessors.length > 0 ? { spanProcessors } : {});
  }
  return reg.telemetry as Promise<ShellTelemetry>;
}

/** Whether `beginTelemetry` would still take new options. */
export function telemetryOptionsOpen(): boolean {
  const reg = registry();
  return reg.telemetry === undefined || reg.pendingOptions !== undefined;
}
