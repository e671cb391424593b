/**
 * Catching every REPLServer as it is created, cheaply.
 *
 * Every REPLServer, whether made by `repl.start()` or `new REPLServer()`,
 * through `require('repl')`, `require('node:repl')` or an ESM import, is an
 * instance of the one built-in `REPLServer` whose constructor ends by calling
 * `this.displayPrompt()`. Wrapping that prototype method therefore sees every
 * shell, with no module loader hooks (which would slow down every import of
 * the host program) and no need to re-export patched bindings to ESM.
 *
 * The start-up hook here is a plain wrapper rather than `InstrumentationBase._wrap`
 * because it runs before any OpenTelemetry code is loaded, which is what keeps
 * `--import otel-shell-sessions/register` as fast as a bare REPL. The
 * instrumentation replaces it with its own `_wrap`ped patch once enabled.
 */
import { REPLServer } from "node:repl";
import { installExitPaths } from "./exit-paths.ts";
import { registry } from "./registry.ts";
import { now, ShellSession } from "./session.ts";
import { writeStart } from "./write-ahead.ts";

/** The prototype method through which every REPLServer passes when it is constructed. */
export const CAPTURE_METHOD = "displayPrompt";

/**
 * The session of `server`, recorded now if it is new: its start is written
 * ahead before the prompt is drawn. A new session is handed to the binder in
 * a microtask, so that a component calling `trackShell()` right after
 * creating its shell can describe it before its span starts.
 */
export function captureServer(server: REPLServer): ShellSession {
  const reg = registry();
  const known = reg.sessions.get(server);
  if (known !== undefined) return known;
  const session = new ShellSession(server, now());
  reg.sessions.set(server, session);
  reg.live.add(session);
  reg.undelivered.add(session);
  installExitPaths();
  writeStart(session);
  // At once: a delivery feed takes the session before any span of it can start (so it is not delivered twice).
  for (const listener of reg.captureListeners) listener(session);
  queueMicrotask(() => {
    if (session.observer === undefined) reg.binder?.bind(session);
  });
  return session;
}

type PromptFn = (this: REPLServer, ...args: unknown[]) => unknown;

/** Installs the start-up hook on `REPLServer.prototype` (once per process). */
export function installCapture(): void {
  const reg = registry();
  if (reg.earlyCapture !== undefined || reg.binder !== undefined) return;
  const target = REPLServer.prototype as unknown as Record<string, unknown>;
  const original = target[CAPTURE_METHOD];
  if (typeof original !== "function") return;
  const wrapper: PromptFn = function capturingDisplayPrompt(this: REPLServer, ...args: unknown[]) {
    captureServer(this);
    return (original as PromptFn).apply(this, args);
  };
  target[CAPTURE_METHOD] = wrapper;
  reg.earlyCapture = { target, name: CAPTURE_METHOD, original, wrapper };
}

/**
 * Removes the start-up hook when the instrumentation takes over. If something
 * else wrapped the method on top of it since, the hook stays (it is harmless:
 * capturing is idempotent) rather than unwrapping the other wrapper.
 */
export function removeCapture(): void {
  const reg = registry();
  const early = reg.earlyCapture;
  if (early === undefined) return;
  if (early.target[early.name] === early.wrapper) {
    early.target[early.name] = early.original;
    reg.earlyCapture = undefined;
  }
}
