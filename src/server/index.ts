/**
 * otel-shell-sessions/server: the Session-Buddy-compatible tracker server.
 *
 * Start the OpenTelemetry SDK (if you want the server's spans and metrics)
 * before starting the tracker: its instruments are created on start.
 *
 * Named exports only: the servers, their options with every default and the
 * variables they read, the loggers and the one error for a bad setting. The
 * parsers behind `shell-sessions serve`'s flags stay inside the package.
 */

export { expireLeases } from "./lease.ts";
export { type Logger, silentLogger, stderrLogger } from "./log.ts";
export { createMcpServer, type McpServerContext } from "./mcp.ts";
export {
  type AuthMode,
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_BODY_TIMEOUT_MS,
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_HOST,
  DEFAULT_LEASE_SECONDS,
  DEFAULT_MAX_CLOCK_SKEW_SECONDS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_REQUESTS,
  DEFAULT_MAX_TOKEN_TTL_SECONDS,
  DEFAULT_MAX_UNAUTHENTICATED_REQUESTS,
  DEFAULT_PATH,
  DEFAULT_PORT,
  DEFAULT_SERVICE_NAME,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_STORE_TIMEOUT_SECONDS,
  DEFAULT_UNAUTHENTICATED_BODY_LIMIT_BYTES,
  ENV_LEASE_SECONDS,
  ENV_SECRET,
  ENV_STORE,
  ENV_TOKEN,
  type HttpOptions,
  httpOptions,
  OptionError,
  SERVER_NAME,
} from "./options.ts";
export { ServerTelemetry } from "./telemetry.ts";
export { TrackerTools } from "./tools.ts";
export {
  type HttpTracker,
  type StdioTracker,
  startStdioTracker,
  startTrackerServer,
  type TrackerOptions,
} from "./tracker.ts";
