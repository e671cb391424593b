/**
 * Public configuration and handle types of the shell session instrumentation.
 *
 * This file holds types only, so that the light, start-up path of the package
 * can share them without loading any OpenTelemetry code.
 */
import type { InstrumentationConfig } from "@opentelemetry/instrumentation";
import type { ExitReason } from "../contract/schemas.ts";

export type { ExitReason };

/** What a component says about one shell; every field is optional. */
export interface ShellOptions {
  /**
   * The component (service) whose admin shell this is, e.g. `mahavishnu`.
   * Default: `SHELL_SESSIONS_COMPONENT`, else `OTEL_SERVICE_NAME`, else `service.name` in
   * `OTEL_RESOURCE_ATTRIBUTES`, else `unknown_service_node`.
   */
  component?: string;
  /** The shell's type, e.g. `MahavishnuShell`. Default: the REPL's class name (`REPLServer`). */
  shellType?: string;
  /** The component's version. Default: `SHELL_SESSIONS_COMPONENT_VERSION`, else not recorded. */
  version?: string;
  /** The adapters (back ends) the shell has loaded, e.g. `["redis", "postgres"]`. Default: `SHELL_SESSIONS_ADAPTERS` (comma-separated). */
  adapters?: string[];
}

/**
 * Turns one input into the text recorded on its `shell.eval` span, or
 * `undefined` to record nothing for it.
 */
export type InputRedactor = (input: string) => string | undefined;

export interface ShellSessionInstrumentationConfig extends InstrumentationConfig, ShellOptions {
  /** One `shell.eval` child span per evaluated input. Off by default. */
  evalSpans?: boolean;
  /**
   * Record the text of each input on its `shell.eval` span (`shell.eval.input`),
   * after `redactInput`. Off by default, and without effect unless `evalSpans` is on.
   */
  captureInput?: boolean;
  /** Applied to every captured input. Default: {@link defaultRedact}, which masks tokens, keys and passwords. */
  redactInput?: InputRedactor;
  /** Print the "session tracking on" line in the shell. Default: true (`SHELL_SESSIONS_BANNER=off` turns it off). */
  banner?: boolean;
  /**
   * Name under which the session's identity is put into the shell's context,
   * or `false` for none. Default: `session`. A name the shell already defines is left alone.
   */
  contextName?: string | false;
}

/** The session's identity as shown inside the shell (the `session` object). */
export interface SessionInfo {
  /** `session.id`: a UUID v4, fresh for every shell. */
  readonly id: string;
  /** The trace id of the session span: the correlation id of everything the session does. */
  readonly traceId: string;
  /** The span id of the session span. */
  readonly spanId: string;
  readonly component: string;
  readonly shellType: string;
  /** ISO 8601 start time. */
  readonly startedAt: string;
}

/** What {@link trackShell} returns. */
export interface ShellSessionHandle {
  /** `session.id` of this shell's session. */
  readonly sessionId: string;
  /** Trace id of the session span, once it has started (see `ready`); `undefined` before. */
  readonly traceId: string | undefined;
  /** Span id of the session span, once it has started. */
  readonly spanId: string | undefined;
  /** Settles when the session span has started (immediately if telemetry was already running). */
  readonly ready: Promise<void>;
  /** True once the session has ended. */
  readonly ended: boolean;
  /**
   * Ends the session span now with `reason` (default `closed`), without
   * closing the shell. Later exits of the shell are then not recorded again.
   */
  end(reason?: ExitReason): void;
}
