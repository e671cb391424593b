/**
 * Process-wide state of the instrumentation.
 *
 * It lives on `globalThis` under a registered symbol, not in module scope,
 * because one process can load this package more than once (the build and
 * the sources, `--import` and a programmatic import resolving to different
 * copies): every copy must see the same shells, or a shell would be tracked
 * twice or handed to a tracer that was never started.
 *
 * This module and everything it imports stay free of OpenTelemetry code: it
 * is on the synchronous start-up path of `--import otel-shell-sessions/register`.
 */
import type { Journal } from "../journal/journal.ts";
import type { ShellSession } from "./session.ts";

/** Turns recorded sessions into spans; the enabled instrumentation registers itself as the binder. */
export interface SessionBinder {
  bind(session: ShellSession): void;
}

export interface Registry {
  /** Session of each REPLServer seen so far. */
  readonly sessions: WeakMap<object, ShellSession>;
  /** Sessions that are open, or ended but not yet handed to a binder. */
  readonly live: Set<ShellSession>;
  /** Called with every newly captured session (after the binder, if any). */
  readonly captureListeners: Set<(session: ShellSession) => void>;
  /** Called with every session as it ends (after its end is written ahead). */
  readonly endListeners: Set<(session: ShellSession) => void>;
  /** Sessions not yet handed to a delivery feed (a feed takes them all when it starts). */
  readonly undelivered: Set<ShellSession>;
  /** The write-ahead journal of this process, once a shell has started. */
  journal: Journal | undefined;
  /** Bounded flushes run on SIGTERM/SIGHUP and before a natural exit (telemetry adds its own). */
  readonly flushers: Set<() => Promise<void>>;
  binder: SessionBinder | undefined;
  /** True once the process-level exit handlers are in place. */
  exitPathsInstalled: boolean;
  /** The start-up hook on `REPLServer.prototype`, while installed. */
  earlyCapture: { target: Record<string, unknown>; name: string; original: unknown; wrapper: unknown } | undefined;
  /** Set when a session ended since the last flush. */
  unflushed: boolean;
}

/**
 * The shape of the registry changes with the package: copies of another
 * shape use another key (the number here), so they never read each other's
 * state; they then track their own shells apart.
 */
const KEY = Symbol.for("otel-shell-sessions.registry.v3");

export function registry(): Registry {
  const holder = globalThis as unknown as Record<symbol, Registry | undefined>;
  let reg = holder[KEY];
  if (reg === undefined) {
    reg = {
      sessions: new WeakMap(),
      live: new Set(),
      captureListeners: new Set(),
      endListeners: new Set(),
      undelivered: new Set(),
      journal: undefined,
      flushers: new Set(),
      binder: undefined,
      exitPathsInstalled: false,
      earlyCapture: undefined,
      unflushed: false,
    };
    Object.defineProperty(globalThis, KEY, { value: reg, enumerable: false, configurable: true, writable: false });
  }
  return reg;
}
