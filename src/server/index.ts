/**
 * otel-shell-sessions/server: the Session-Buddy-compatible tracker server.
 *
 * Start the OpenTelemetry SDK (if you want the server's spans and metrics)
 * before starting the tracker: its instruments are created on start.
 */

export { expireLeases } from "./lease.ts";
export { type Logger, silentLogger, stderrLogger } from "./log.ts";
export { createMcpServer, type McpServerContext, toCallToolResult } from "./mcp.ts";
export * from "./options.ts";
export { ServerTelemetry } from "./telemetry.ts";
export { TrackerTools } from "./tools.ts";
export {
  type HttpTracker,
  type StdioTracker,
  startStdioTracker,
  startTrackerServer,
  type TrackerOptions,
} from "./tracker.ts";
