/**
 * Ending sessions on the ways out of a process that bypass the REPL's own
 * `close`: `process.exit()`, `process.reallyExit()`, a fatal error, and
 * SIGINT, SIGTERM and SIGHUP sent from outside.
 *
 * Every end is written ahead to the journal synchronously (session.ts), so
 * nothing here has to wait for the network: whatever is not delivered before
 * the process is gone is delivered by the drain helper.
 *
 * Rules, so that instrumenting a program never changes how it exits:
 * - `process.exit()` and fatal errors: sessions end synchronously inside the
 *   process `exit` event (with the exit code), then the journal is closed.
 * - `process.reallyExit()` (which skips the `exit` event) is wrapped to do
 *   the same first.
 * - Fatal errors are observed with `uncaughtExceptionMonitor`, which does not
 *   change how the error is handled.
 * - Signals: if nobody else listens for the signal, sessions end, telemetry
 *   gets a short bounded flush, our listener is removed and the signal raised
 *   again, so the process dies of it exactly as it would have (status 130 /
 *   143 / 129). If the host listens, the decision is the host's: SIGTERM and
 *   SIGHUP still end the sessions (they ask the program to go away); SIGINT
 *   is often handled without exiting, so it only marks the reason, used if
 *   the process then exits.
 */
import { registry } from "./registry.ts";
import type { ExitReason } from "./types.ts";
import { leaveJournal } from "./write-ahead.ts";

/** How long a signal waits for telemetry to flush before the process goes down; the journal already holds the ends. */
export const SIGNAL_FLUSH_TIMEOUT_MS = 250;

const SIGNAL_REASONS = { SIGINT: "sigint", SIGTERM: "sigterm", SIGHUP: "sighup" } as const satisfies Record<
  string,
  ExitReason
>;
type HandledSignal = keyof typeof SIGNAL_REASONS;

/** Ends every open session with `reason`. */
export function endOpenSessions(reason: ExitReason, error?: unknown, exitCode?: number): void {
  for (const session of [...registry().live]) session.end(reason, error, exitCode);
}

/**
 * Runs every registered flush (telemetry registers one that waits for its
 * start-up in progress), and gives up after `timeoutMs`. Never rejects.
 */
export async function flushTelemetry(timeoutMs: number): Promise<void> {
  const reg = registry();
  const work = (async () => {
    reg.unflushed = false;
    await Promise.allSettled([...reg.flushers].map((flush) => flush()));
  })();
  // Loaded on first use: this module is on `register`'s way to the first prompt. The timer stays
  // referenced: when this is a signal's flush, the signal is raised again after it.
  const { settledWithin } = await import("../deadline.ts");
  await settledWithin(work, timeoutMs);
}

/** `OTEL_SDK_DISABLED=true`, as the OpenTelemetry spec reads it. */
export function sdkDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^\s*true\s*$/i.test(env.OTEL_SDK_DISABLED ?? "");
}

/** Installs the process-level handlers once per process. */
export function installExitPaths(): void {
  const reg = registry();
  if (reg.exitPathsInstalled) return;
  reg.exitPathsInstalled = true;

  // The monitor also fires for errors a REPL's domain then handles, so a fatal
  // error is only assumed when `exit` follows in the same turn of the loop.
  let fatal: { error: unknown } | undefined;
  process.on("uncaughtExceptionMonitor", (error) => {
    fatal = { error };
    setImmediate(() => {
      fatal = undefined;
    }).unref();
  });
  // A signal the host handled: if the process exits after it, that is why.
  let signalled: ExitReason | undefined;
  const leave = (code: number | undefined) => {
    if (fatal !== undefined) endOpenSessions("uncaught_error", fatal.error, code);
    else endOpenSessions(signalled ?? "process_exit", undefined, code);
    leaveJournal();
  };
  process.on("exit", (code) => leave(code));
  wrapReallyExit(leave);

  for (const signal of Object.keys(SIGNAL_REASONS) as HandledSignal[]) {
    let flushing = false;
    const reraise = () => {
      leaveJournal();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    const onSignal = () => {
      const reason = SIGNAL_REASONS[signal];
      const hostListens = process.listeners(signal).some((listener) => listener !== onSignal);
      if (hostListens && signal === "SIGINT") {
        signalled = reason;
        return;
      }
      endOpenSessions(reason);
      if (hostListens) {
        void flushTelemetry(SIGNAL_FLUSH_TIMEOUT_MS);
        return;
      }
      // Nothing to deliver, or a second signal while flushing: go down now.
      if (flushing || !registry().unflushed) return reraise();
      flushing = true;
      // Whatever the flush does not deliver, the helper will: it must be there before we wait.
      reg.journal?.ensureHelper();
      void flushTelemetry(SIGNAL_FLUSH_TIMEOUT_MS).then(reraise);
    };
    process.on(signal, onSignal);
  }
}

/**
 * `process.reallyExit(code)` ends the process without an `exit` event (it is
 * what `process.exit()` calls last). Wrapped once, so that calling it
 * directly still records the ends first; through `process.exit()` the
 * sessions have already ended and this does nothing more.
 */
function wrapReallyExit(leave: (code: number | undefined) => void): void {
  const host = process as unknown as { reallyExit?: (code?: number) => never };
  const original = host.reallyExit;
  if (typeof original !== "function") return;
  host.reallyExit = function reallyExitRecorded(this: unknown, code?: number) {
    try {
      leave(typeof code === "number" ? code : undefined);
    } catch {
      // Never stand between a program and its exit.
    }
    return original.call(this, code);
  } as (code?: number) => never;
}
