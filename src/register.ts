/**
 * `node --import otel-shell-sessions/register app.js`
 *
 * Tracks every `node:repl` shell the program opens as a `shell.session` span,
 * with the OpenTelemetry Node SDK configured from the standard `OTEL_*`
 * variables (or joined to an SDK another `--import` already started).
 *
 * What runs here before the program does is deliberately tiny: the hook that
 * records each REPL and its start time. Everything else is loaded after the
 * first prompt is shown.
 *
 * Environment: `SHELL_SESSIONS_COMPONENT`, `SHELL_SESSIONS_COMPONENT_VERSION`,
 * `SHELL_SESSIONS_ADAPTERS` (comma-separated), `SHELL_SESSIONS_EVAL_SPANS`,
 * `SHELL_SESSIONS_CAPTURE_INPUT`, `SHELL_SESSIONS_BANNER`, plus the `OTEL_*`
 * variables of the SDK.
 */
import { bootstrapTelemetry } from "./telemetry/bootstrap.ts";

bootstrapTelemetry().catch(async (error: unknown) => {
  const { diag } = await import("@opentelemetry/api");
  diag.error(`shell session telemetry did not start: ${error instanceof Error ? error.message : typeof error}`);
});
