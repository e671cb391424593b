/**
 * otel-shell-sessions: the programmatic API.
 *
 * - `startShellTelemetry(options)`: the OpenTelemetry Node SDK with shell
 *   session tracking, for apps that do not use `--import otel-shell-sessions/register`.
 * - `trackShell(server, options)`: one call for a component that builds its own shell.
 * - `ShellSessionInstrumentation`: the instrumentation itself, for an SDK you build;
 *   with it, `createSessionSpanProcessor()` from `otel-shell-sessions/exporter`
 *   delivers the sessions to the tracker (a separate entry point, so that
 *   importing this one stays cheap on a shell's way to its first prompt).
 */
export * as contract from "./contract/index.ts";
export { ShellSessionInstrumentation } from "./instrumentation/instrumentation.ts";
export { defaultRedact, REDACTED } from "./instrumentation/redact.ts";
export type {
  ExitReason,
  InputRedactor,
  SessionInfo,
  ShellOptions,
  ShellSessionHandle,
  ShellSessionInstrumentationConfig,
} from "./instrumentation/types.ts";
export { OptionError } from "./option-error.ts";
export { startShellTelemetry, trackShell } from "./telemetry/api.ts";
export type { ShellTelemetry, ShellTelemetryOptions } from "./telemetry/types.ts";
