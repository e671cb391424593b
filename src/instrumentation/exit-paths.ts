/**
 * Ending sessions on the ways out of a process that bypass the REPL's own
 * `close`: `process.exit()`, a fatal error, SIGTERM and SIGHUP.
 *
 * Rules, so that instrumenting a program never changes how it exits:
 * - `process.exit()` and fatal errors: sessions end synchronously inside the
 *   process `exit` event, so span processors run there (and can write to a
 *   spool synchronously); nothing asynchronous is attempted.
 * - Fatal errors are observed with `uncaughtExceptionMonitor`, which does not
 *   change how the error is handled.
 * - SIGTERM/SIGHUP: sessions end, telemetry is flushed within a short bound,
 *   then, if nobody else listens for that signal, our listener is removed and
 *   the signal raised again, so the process dies of it exactly as it would
 *   have (status 143 / 129). If the host listens too, the decision is the host's.
 */
import { registry } from "./registry.ts";
import type { ExitReason } from "./types.ts";

/** How long a signal waits for telemetry to flush before the process goes down. */
export const SIGNAL_FLUSH_TIMEOUT_MS = 2000;

const SIGNAL_REASONS = { SIGTERM: "sigterm", SIGHUP: "sighup" } as const satisfies Record<string, ExitReason>;
type HandledSignal = keyof typeof SIGNAL_REASONS;

/** Ends every open session with `reason`. */
export function endOpenSessions(reason: ExitReason, error?: unknown): void {
  for (const session of [...registry().live]) session.end(reason, error);
}

/**
 * Flushes every registered telemetry pipeline, waiting first for a start-up in
 * progress, and gives up after `timeoutMs`. Never rejects.
 */
export async function flushTelemetry(timeoutMs: number): Promise<void> {
  const reg = registry();
  const work = (async () => {
    if (reg.telemetry !== undefined) await reg.telemetry.catch(() => undefined);
    reg.unflushed = false;
    await Promise.allSettled([...reg.flushers].map((flush) => flush()));
  })();
  // Loaded on first use: this module is on `register`'s way to the first prompt. The timer stays
  // referenced: when this is a signal's flush, the signal is raised again after it.
  const { settledWithin } = await import("../deadline.ts");
  await settledWithin(work, timeoutMs);
}

/**
 * A process that dies (`process.exit()`, a fatal error) in the moment between
 * its first prompt and the SDK finishing loading leaves sessions that never
 * became spans, so nothing can export or deliver them. They are not lost
 * silently: stderr says how many.
 */
function reportUnrecorded(): void {
  const reg = registry();
  if (reg.telemetry === undefined || reg.telemetrySettled) return;
  if (sdkDisabled()) return;
  const unrecorded = [...reg.live].filter((session) => session.observer === undefined).length;
  if (unrecorded === 0) return;
  process.stderr.write(
    `otel-shell-sessions: ${unrecorded} shell session${unrecorded === 1 ? "" : "s"} ended before telemetry ` +
      "had finished loading (the process exited within about a second of its first prompt); not recorded\n",
  );
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
  process.on("exit", () => {
    if (fatal !== undefined) endOpenSessions("uncaught_error", fatal.error);
    else endOpenSessions("process_exit");
    reportUnrecorded();
  });

  for (const signal of Object.keys(SIGNAL_REASONS) as HandledSignal[]) {
    let flushing = false;
    const reraise = () => {
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    const onSignal = () => {
      endOpenSessions(SIGNAL_REASONS[signal]);
      const hostListens = process.listeners(signal).some((listener) => listener !== onSignal);
      if (hostListens) {
        void flushTelemetry(SIGNAL_FLUSH_TIMEOUT_MS);
        return;
      }
      // Nothing to deliver, or a second signal while flushing: go down now.
      if (flushing || !registry().unflushed) return reraise();
      flushing = true;
      void flushTelemetry(SIGNAL_FLUSH_TIMEOUT_MS).then(reraise);
    };
    process.on(signal, onSignal);
  }
}
