/** Public types of the telemetry set-up (types only: shared by the light start-up path). */
import type { IMetricReader } from "@opentelemetry/sdk-metrics";
import type { SpanProcessor } from "@opentelemetry/sdk-trace";
import type { ShellSessionInstrumentation } from "../instrumentation/instrumentation.ts";
import type { ShellSessionInstrumentationConfig } from "../instrumentation/types.ts";

export interface ShellTelemetryOptions extends ShellSessionInstrumentationConfig {
  /**
   * `service.name` of the SDK's resource. Default: `OTEL_SERVICE_NAME`, else
   * `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else `component`, else the
   * SDK's default.
   */
  serviceName?: string;
  /**
   * Span processors added to those of `OTEL_TRACES_EXPORTER` and of session
   * delivery (e.g. a `SimpleSpanProcessor` around your own exporter).
   */
  spanProcessors?: SpanProcessor[];
  /** Metric readers to use instead of those of `OTEL_METRICS_EXPORTER`. */
  metricReaders?: IMetricReader[];
}

/** What `startShellTelemetry` resolves to. */
export interface ShellTelemetry {
  /**
   * `sdk`: this package started the OpenTelemetry Node SDK.
   * `attached`: an SDK was already registered in the process (e.g. by
   * `@opentelemetry/auto-instrumentations-node/register`); the instrumentation
   * joined it instead of starting a second one.
   * `isolated`: the process's providers belong to an `@opentelemetry/api`
   * copy this package cannot share (an app on an older OpenTelemetry stack);
   * session spans and metrics got providers of their own, exporting where the
   * `OTEL_*` variables say, and a process warning said so.
   * `disabled`: `OTEL_SDK_DISABLED=true`.
   */
  readonly mode: "sdk" | "attached" | "isolated" | "disabled";
  readonly instrumentation: ShellSessionInstrumentation;
  /** Exports everything recorded so far. */
  forceFlush(): Promise<void>;
  /** Flushes and stops what this package started (never another SDK it attached to). */
  shutdown(): Promise<void>;
}
