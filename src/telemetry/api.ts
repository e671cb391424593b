/** The programmatic API for components that build their own shell. */
import { REPLServer } from "node:repl";
import { diag } from "@opentelemetry/api";
import { kindOf } from "../contract/errors.ts";
import { captureServer } from "../instrumentation/capture.ts";
import { ShellSessionInstrumentation } from "../instrumentation/instrumentation.ts";
import { registry } from "../instrumentation/registry.ts";
import type { ExitReason, ShellOptions, ShellSessionHandle } from "../instrumentation/types.ts";
import { OptionError } from "../option-error.ts";
import { parseExitReason, parseShellOptions, parseTelemetryOptions } from "./options.ts";
import { beginTelemetry, telemetryOptionsOpen, telemetryStarted } from "./start.ts";
import type { ShellTelemetry, ShellTelemetryOptions } from "./types.ts";

/**
 * Tracks a shell the component has built: its session becomes a
 * `shell.session` span described by `options`.
 *
 * Call it right after creating the REPLServer (in the same turn of the event
 * loop), so the span starts with the component's own name, type, version and
 * adapters. Calling it again for the same shell returns the same session.
 *
 * If telemetry is still starting (`startShellTelemetry` not yet settled), the
 * span starts, with the shell's real start time, as soon as it is up; await
 * `handle.ready` to read `handle.traceId`. If no telemetry was started by this
 * package, the span goes to whatever tracer provider is registered globally.
 *
 * @param server the `node:repl` REPLServer (from `repl.start()` or `new REPLServer()`)
 * @param options how the component describes the shell
 * @returns the session's handle: `sessionId`, `traceId`, `ready`, `end(reason)`
 * @throws OptionError (a ContractError, `invalid_argument`) naming the bad field; nothing is tracked then
 *
 * @example
 * const server = repl.start({ prompt: "mahavishnu> " });
 * const session = trackShell(server, { component: "mahavishnu", shellType: "MahavishnuShell", version: "2.3.0", adapters: ["redis"] });
 */
export function trackShell(server: REPLServer, options: ShellOptions = {}): ShellSessionHandle {
  if (!(server instanceof REPLServer)) {
    throw new OptionError(
      `trackShell: server must be a node:repl REPLServer, from repl.start() or new REPLServer() (received ${kindOf(server)})`,
      "server",
      [{ field: "server", constraint: "a node:repl REPLServer", received: kindOf(server) }],
    );
  }
  const shell = parseShellOptions(options);
  const reg = registry();
  const session = captureServer(server);
  session.configure(shell);
  if (session.observer === undefined) {
    if (reg.binder !== undefined) reg.binder.bind(session);
    else if (!telemetryStarted()) new ShellSessionInstrumentation().bind(session);
    // Otherwise telemetry is starting, and its instrumentation takes the session over when it is up.
  }
  const handle = session.handle();
  return {
    get sessionId() {
      return handle.sessionId;
    },
    get traceId() {
      return handle.traceId;
    },
    get spanId() {
      return handle.spanId;
    },
    get ended() {
      return handle.ended;
    },
    ready: handle.ready,
    end(reason: ExitReason = "closed") {
      handle.end(parseExitReason(reason));
    },
  };
}

/**
 * Starts the OpenTelemetry Node SDK for an app that does not use
 * `--import otel-shell-sessions/register`: exporters from the standard
 * `OTEL_*` variables, the shell session instrumentation, and the session
 * delivery processors. If an SDK is already registered in the process, the
 * instrumentation joins it instead of starting a second one. Under
 * `--import otel-shell-sessions/register`, whose SDK loads after the first
 * prompt, a call made before then adds `options` to that one SDK (its span
 * processors are added, other settings override the environment's). Once
 * telemetry is up, a call returns it unchanged (a warning says the options
 * were not applied); describe each shell with `trackShell` instead.
 *
 * REPLs created from the moment of this call are recorded with their real
 * start time even while the SDK is still loading, so an app that wants its
 * prompt first can call this without awaiting, then create its shell.
 *
 * @param options instrumentation settings and SDK additions
 * @returns the running telemetry, with `forceFlush()` and `shutdown()`
 * @throws OptionError (a ContractError, `invalid_argument`) naming the bad field; nothing is started then
 */
export function startShellTelemetry(options: ShellTelemetryOptions = {}): Promise<ShellTelemetry> {
  const parsed = parseTelemetryOptions(options);
  if (!telemetryOptionsOpen() && Object.keys(parsed).length > 0) {
    diag.warn(
      "startShellTelemetry: shell session telemetry is already running in this process (e.g. under --import otel-shell-sessions/register); its options are not changed",
    );
  }
  return beginTelemetry(parsed);
}
