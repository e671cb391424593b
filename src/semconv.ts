/**
 * Telemetry names shared by the instrumentation, the exporter, the tracker
 * server and the dashboards.
 *
 * The OpenTelemetry names below are copied from the incubating semantic
 * conventions rather than imported from `@opentelemetry/semantic-conventions/incubating`,
 * as the contrib packages do, because incubating exports may change in any
 * minor release. The `shell.*` names are this project's own.
 */

// ---- OpenTelemetry semantic conventions (stable and incubating) ----
export const ATTR_SESSION_ID = "session.id";
export const ATTR_PROCESS_INTERACTIVE = "process.interactive";
export const ATTR_ERROR_TYPE = "error.type";
// The MCP and GenAI names: `@opentelemetry/semantic-conventions` 1.45 marks them deprecated only
// because they moved, unchanged, to the OpenTelemetry GenAI semantic conventions repository.
export const ATTR_MCP_METHOD_NAME = "mcp.method.name";
export const ATTR_MCP_SESSION_ID = "mcp.session.id";
export const ATTR_MCP_PROTOCOL_VERSION = "mcp.protocol.version";
export const ATTR_GEN_AI_TOOL_NAME = "gen_ai.tool.name";
export const ATTR_GEN_AI_OPERATION_NAME = "gen_ai.operation.name";
export const ATTR_NETWORK_TRANSPORT = "network.transport";
export const ATTR_JSONRPC_REQUEST_ID = "jsonrpc.request.id";
export const ATTR_OTEL_COMPONENT_TYPE = "otel.component.type";
export const ATTR_OTEL_COMPONENT_NAME = "otel.component.name";

export const METRIC_MCP_CLIENT_OPERATION_DURATION = "mcp.client.operation.duration";
export const METRIC_MCP_SERVER_OPERATION_DURATION = "mcp.server.operation.duration";
export const METRIC_OTEL_SDK_EXPORTER_OPERATION_DURATION = "otel.sdk.exporter.operation.duration";
export const METRIC_OTEL_SDK_EXPORTER_SPAN_EXPORTED = "otel.sdk.exporter.span.exported";
export const METRIC_OTEL_SDK_EXPORTER_SPAN_INFLIGHT = "otel.sdk.exporter.span.inflight";

// ---- This project's names ----
export const SPAN_NAME_SESSION = "shell.session";
export const SPAN_NAME_EVAL = "shell.eval";

export const ATTR_SHELL_COMPONENT_NAME = "shell.component.name";
export const ATTR_SHELL_COMPONENT_VERSION = "shell.component.version";
export const ATTR_SHELL_TYPE = "shell.type";
export const ATTR_SHELL_ADAPTERS = "shell.adapters";
export const ATTR_SHELL_EXIT_REASON = "shell.exit.reason";
export const ATTR_SHELL_EVAL_COUNT = "shell.eval.count";
export const ATTR_SHELL_EVAL_ERROR_COUNT = "shell.eval.error_count";
export const ATTR_SHELL_EVAL_INPUT = "shell.eval.input";
export const ATTR_SHELL_SESSION_DURATION = "shell.session.duration";
/** The tracker's (Session-Buddy's) id for the session, set on the span once known. */
export const ATTR_SHELL_TRACKER_SESSION_ID = "shell.tracker.session_id";
export const ATTR_SHELL_EVENT_TYPE = "shell.event.type";
export const ATTR_SHELL_EMISSION_OUTCOME = "shell.emission.outcome";
export const ATTR_SHELL_TOOL_STATUS = "shell.tool.status";

// Instrumentation metrics
export const METRIC_SHELL_SESSION_ACTIVE = "shell.session.active";
export const METRIC_SHELL_SESSION_DURATION = "shell.session.duration";
export const METRIC_SHELL_SESSION_STARTED = "shell.session.started";
export const METRIC_SHELL_SESSION_ENDED = "shell.session.ended";

// Exporter metrics
export const METRIC_SHELL_EMISSION_DURATION = "shell.emission.duration";
export const METRIC_SHELL_EMISSIONS = "shell.emissions";
export const METRIC_SHELL_EXPORTER_CIRCUIT_STATE = "shell.exporter.circuit.state";
export const ATTR_SHELL_CIRCUIT_STATE = "shell.circuit.state";
export const METRIC_SHELL_SPOOL_DEPTH = "shell.spool.depth";
export const METRIC_SHELL_SPOOL_LOST = "shell.spool.lost";

// Tracker server metrics
export const METRIC_SHELL_TRACKER_SESSIONS_STARTED = "shell.tracker.sessions.started";
export const METRIC_SHELL_TRACKER_SESSIONS_ENDED = "shell.tracker.sessions.ended";
export const METRIC_SHELL_TRACKER_SESSIONS_ABANDONED = "shell.tracker.sessions.abandoned";
export const METRIC_SHELL_TRACKER_SESSIONS_ACTIVE = "shell.tracker.sessions.active";

/** Values of ATTR_SHELL_EMISSION_OUTCOME. */
export const EMISSION_OUTCOMES = [
  "success",
  "retried",
  "failed",
  "rejected",
  "short_circuited",
  "spooled",
  "lost",
] as const;
export type EmissionOutcome = (typeof EMISSION_OUTCOMES)[number];

/** Values of ATTR_SHELL_CIRCUIT_STATE: one series each on METRIC_SHELL_EXPORTER_CIRCUIT_STATE, 1 for the current state. */
export const CIRCUIT_STATES = ["closed", "half_open", "open"] as const;

/** Instrumentation scope name for every tracer and meter of this package. */
export const SCOPE_NAME = "otel-shell-sessions";
