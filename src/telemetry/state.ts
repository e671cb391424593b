/**
 * Telemetry's own start-up state: the one start of this process (so
 * `--import otel-shell-sessions/register` and a programmatic start never make
 * two SDKs), the options still open to later callers, and the flushes of the
 * pipelines it built. The instrumentation knows nothing of it: telemetry
 * hands the exit paths one flush (`registry().flushers`) that waits for the
 * start and then runs these.
 *
 * On `globalThis` for the reason the instrumentation's registry is: one
 * process can load several copies of this package. The key is stamped with
 * the shape of the value (its number, raised with every change to the
 * shape), so copies whose shapes differ never read each other's state and
 * each starts its own. Not the package version: copies of different versions
 * with the same shape should share one start.
 */
import type { ShellTelemetry, ShellTelemetryOptions } from "./types.ts";

export interface TelemetryState {
  /** The start-up in progress or done, if any. */
  start: Promise<ShellTelemetry> | undefined;
  /** Options of a start-up that has not begun loading yet; later callers may add to them. */
  pending: ShellTelemetryOptions | undefined;
  /** Bounded flushes of the pipelines started, run on SIGTERM/SIGHUP and before a natural exit. */
  readonly flushers: Set<() => Promise<void>>;
}

const KEY = Symbol.for("otel-shell-sessions.telemetry.v1");

export function telemetryState(): TelemetryState {
  const holder = globalThis as unknown as Record<symbol, TelemetryState | undefined>;
  let state = holder[KEY];
  if (state === undefined) {
    state = { start: undefined, pending: undefined, flushers: new Set() };
    Object.defineProperty(globalThis, KEY, { value: state, enumerable: false, configurable: true, writable: false });
  }
  return state;
}
