/**
 * The names this instrumentation emits: the shared ones from `src/semconv.ts`
 * plus the few that only the instrumentation uses.
 */
export {
  ATTR_ERROR_TYPE,
  ATTR_PROCESS_INTERACTIVE,
  ATTR_SESSION_ID,
  ATTR_SHELL_ADAPTERS,
  ATTR_SHELL_COMPONENT_NAME,
  ATTR_SHELL_COMPONENT_VERSION,
  ATTR_SHELL_EVAL_COUNT,
  ATTR_SHELL_EVAL_ERROR_COUNT,
  ATTR_SHELL_EVAL_INPUT,
  ATTR_SHELL_EXIT_REASON,
  ATTR_SHELL_SESSION_DURATION,
  ATTR_SHELL_TYPE,
  METRIC_SHELL_SESSION_ACTIVE,
  METRIC_SHELL_SESSION_DURATION,
  METRIC_SHELL_SESSION_ENDED,
  METRIC_SHELL_SESSION_STARTED,
  SCOPE_NAME,
  SPAN_NAME_EVAL,
  SPAN_NAME_SESSION,
} from "../semconv.ts";

/** 1-based position of an input within its session, on `shell.eval` spans. */
export const ATTR_SHELL_EVAL_INDEX = "shell.eval.index";

/** Name of the object this instrumentation puts into a shell's context by default. */
export const DEFAULT_CONTEXT_NAME = "session";

/**
 * Component name when neither the caller nor the environment gives one:
 * OpenTelemetry's default service name (`unknown_service:node`) spelled as a
 * component name may be (`^[a-zA-Z0-9_-]+$`), so that span, shell metrics,
 * tracker store and tracker metrics all carry the same value.
 */
export const UNKNOWN_COMPONENT = "unknown_service_node";

/** Bucket boundaries (seconds) for session durations: admin shells last from seconds to a working day. */
export const SESSION_DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800];
