/** The instrumentation's metric instruments (OpenTelemetry Metrics API). */
import {
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  type UpDownCounter,
  ValueType,
} from "@opentelemetry/api";
import {
  METRIC_SHELL_SESSION_ACTIVE,
  METRIC_SHELL_SESSION_DURATION,
  METRIC_SHELL_SESSION_ENDED,
  METRIC_SHELL_SESSION_STARTED,
  SESSION_DURATION_BUCKETS,
} from "./semconv.ts";

export interface SessionMetrics {
  /** Sessions open now. */
  readonly active: UpDownCounter<Attributes>;
  /** Length of ended sessions, in seconds. */
  readonly duration: Histogram<Attributes>;
  readonly started: Counter<Attributes>;
  /** Ended sessions, by `shell.exit.reason`. */
  readonly ended: Counter<Attributes>;
}

export function createSessionMetrics(meter: Meter): SessionMetrics {
  return {
    active: meter.createUpDownCounter(METRIC_SHELL_SESSION_ACTIVE, {
      description: "Number of admin shell sessions currently open.",
      unit: "{session}",
      valueType: ValueType.INT,
    }),
    duration: meter.createHistogram(METRIC_SHELL_SESSION_DURATION, {
      description: "Duration of admin shell sessions, from the REPL's start to its end.",
      unit: "s",
      valueType: ValueType.DOUBLE,
      advice: { explicitBucketBoundaries: SESSION_DURATION_BUCKETS },
    }),
    started: meter.createCounter(METRIC_SHELL_SESSION_STARTED, {
      description: "Number of admin shell sessions started.",
      unit: "{session}",
      valueType: ValueType.INT,
    }),
    ended: meter.createCounter(METRIC_SHELL_SESSION_ENDED, {
      description: "Number of admin shell sessions ended, by exit reason.",
      unit: "{session}",
      valueType: ValueType.INT,
    }),
  };
}
