/**
 * Trace exporters as the standard `OTEL_*` variables configure them.
 *
 * The Node SDK builds these itself only when given no span processors at
 * all; as we add the session delivery processors to the same tracer
 * provider, we build the exporters it would have built and pass the whole
 * list. Exporter packages are loaded only when selected.
 */
import { diag } from "@opentelemetry/api";
import type { MetricReader, PushMetricExporter } from "@opentelemetry/sdk-metrics";
import type { SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace";
import { LEAVING_EXPORT_TIMEOUT_MS, LeavingAwareMetricExporter, LeavingAwareSpanExporter } from "./leaving.ts";

export const TRACE_EXPORTERS = ["otlp", "console", "none"] as const;
export const OTLP_PROTOCOLS = ["http/protobuf", "http/json", "grpc"] as const;

function list(value: string | undefined): string[] {
  return [
    ...new Set(
      (value ?? "")
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v.length > 0),
    ),
  ];
}

function nonNegative(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

type OtlpConfig = { timeoutMillis?: number };
type Protocol = (typeof OTLP_PROTOCOLS)[number];

/**
 * `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`,
 * else http/protobuf; an unsupported value is said and replaced.
 */
function otlpProtocol(env: NodeJS.ProcessEnv, signal: "TRACES" | "METRICS"): Protocol {
  const chosen =
    (env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "").trim() || "http/protobuf";
  if ((OTLP_PROTOCOLS as readonly string[]).includes(chosen)) return chosen as Protocol;
  diag.warn(
    `unsupported OTLP ${signal.toLowerCase()} protocol "${chosen}" (use one of ${OTLP_PROTOCOLS.join(", ")}); using http/protobuf`,
  );
  return "http/protobuf";
}

async function otlpTraceExporterOf(env: NodeJS.ProcessEnv, config: OtlpConfig = {}): Promise<SpanExporter> {
  switch (otlpProtocol(env, "TRACES")) {
    case "http/json":
      return new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter(config);
    case "grpc":
      return new (await import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter(config);
    case "http/protobuf":
      return new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter(config);
  }
}

/** The OTLP span exporter of the environment, with its quick twin for the process's last flush (leaving.ts). */
async function otlpTraceExporter(env: NodeJS.ProcessEnv): Promise<SpanExporter> {
  const live = await otlpTraceExporterOf(env);
  const quick = await otlpTraceExporterOf(env, { timeoutMillis: LEAVING_EXPORT_TIMEOUT_MS });
  return new LeavingAwareSpanExporter(live, () => quick);
}

async function otlpMetricExporterOf(env: NodeJS.ProcessEnv, config: OtlpConfig = {}): Promise<PushMetricExporter> {
  switch (otlpProtocol(env, "METRICS")) {
    case "http/json":
      return new (await import("@opentelemetry/exporter-metrics-otlp-http")).OTLPMetricExporter(config);
    case "grpc":
      return new (await import("@opentelemetry/exporter-metrics-otlp-grpc")).OTLPMetricExporter(config);
    case "http/protobuf":
      return new (await import("@opentelemetry/exporter-metrics-otlp-proto")).OTLPMetricExporter(config);
  }
}

/**
 * The metric readers `OTEL_METRICS_EXPORTER` asks for (default `otlp`), as
 * the Node SDK would build them, except that OTLP exporters get their quick
 * twin for the process's last flush.
 */
export async function metricReadersFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<MetricReader[]> {
  const names = list(env.OTEL_METRICS_EXPORTER);
  if (names.length === 0) names.push("otlp");
  if (names.includes("none")) return [];
  const { ConsoleMetricExporter, PeriodicExportingMetricReader } = await import("@opentelemetry/sdk-metrics");
  const readers: MetricReader[] = [];
  const interval = nonNegative(env.OTEL_METRIC_EXPORT_INTERVAL);
  const timeout = nonNegative(env.OTEL_METRIC_EXPORT_TIMEOUT);
  for (const name of names) {
    if (name === "otlp") {
      const live = await otlpMetricExporterOf(env);
      const quick = await otlpMetricExporterOf(env, { timeoutMillis: LEAVING_EXPORT_TIMEOUT_MS });
      readers.push(
        new PeriodicExportingMetricReader({
          exporter: new LeavingAwareMetricExporter(live, () => quick),
          ...(interval !== undefined ? { exportIntervalMillis: interval } : {}),
          ...(timeout !== undefined ? { exportTimeoutMillis: timeout } : {}),
        }),
      );
    } else if (name === "console") {
      readers.push(new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter() }));
    } else if (name === "prometheus") {
      const { PrometheusExporter } = await import("@opentelemetry/exporter-prometheus");
      const port = nonNegative(env.OTEL_EXPORTER_PROMETHEUS_PORT);
      readers.push(
        new PrometheusExporter({
          ...(env.OTEL_EXPORTER_PROMETHEUS_HOST ? { host: env.OTEL_EXPORTER_PROMETHEUS_HOST } : {}),
          ...(port !== undefined ? { port } : {}),
        }),
      );
    } else {
      diag.warn(`OTEL_METRICS_EXPORTER: unsupported exporter "${name}" ignored (use otlp, console, prometheus, none)`);
    }
  }
  return readers;
}

/** The span processors `OTEL_TRACES_EXPORTER` asks for (default `otlp`; `none` for none). */
export async function spanProcessorsFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<SpanProcessor[]> {
  const names = list(env.OTEL_TRACES_EXPORTER);
  if (names.length === 0) names.push("otlp");
  if (names.includes("none")) return [];
  const { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor } = await import("@opentelemetry/sdk-trace");
  const processors: SpanProcessor[] = [];
  for (const name of names) {
    if (name === "otlp") {
      processors.push(
        new BatchSpanProcessor({
          exporter: await otlpTraceExporter(env),
          maxQueueSize: nonNegative(env.OTEL_BSP_MAX_QUEUE_SIZE),
          scheduledDelayMillis: nonNegative(env.OTEL_BSP_SCHEDULE_DELAY),
          exportTimeoutMillis: nonNegative(env.OTEL_BSP_EXPORT_TIMEOUT),
          maxExportBatchSize: nonNegative(env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE),
        }),
      );
    } else if (name === "console") {
      processors.push(new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() }));
    } else {
      diag.warn(`OTEL_TRACES_EXPORTER: unsupported exporter "${name}" ignored (use ${TRACE_EXPORTERS.join(", ")})`);
    }
  }
  return processors;
}
