/**
 * Starting telemetry without waiting for it: REPLs are recorded from this
 * call on (with their real start time), and the SDK is loaded in the
 * background, once `gate` opens. Light: nothing here loads OpenTelemetry.
 */
import { installCapture } from "../instrumentation/capture.ts";
import { registry } from "../instrumentation/registry.ts";
import { telemetryState } from "./state.ts";
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
  const state = telemetryState();
  installCapture();
  if (state.start === undefined) {
    state.pending = { ...options };
    const start = (gate ?? Promise.resolve())
      // In slices, so that the shell whose prompt opened the gate keeps answering while they load.
      .then(() => import("./slices.ts"))
      .then(({ warmUp }) => warmUp())
      .then(() => import("./sdk.ts"))
      .then(({ startSdk }) => {
        const merged = state.pending ?? {};
        state.pending = undefined;
        return startSdk(merged);
      });
    state.start = start;
    // The exit paths' one flush of telemetry: a start-up in progress first, then every pipeline it built.
    registry().flushers.add(async () => {
      await start.catch(() => undefined);
      await Promise.allSettled([...state.flushers].map((flush) => flush()));
    });
  } else if (state.pending !== undefined) {
    const pending = state.pending;
    const spanProcessors = [...(pending.spanProcessors ?? []), ...(options.spanProcessors ?? [])];
    Object.assign(pending, options, spanProcessors.length > 0 ? { spanProcessors } : {});
  }
  return state.start;
}

/** Whether `beginTelemetry` would still take new options. */
export function telemetryOptionsOpen(): boolean {
  const state = telemetryState();
  return state.start === undefined || state.pending !== undefined;
}

/** Telemetry has been started in this process (perhaps still loading). */
export function telemetryStarted(): boolean {
  return telemetryState().start !== undefined;
}
