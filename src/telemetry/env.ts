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

export const TRACE_EXPORTERS = ["otlp", "zipkin", "console", "none"] as const;

/**
 * Where a word about the environment goes. The SDK sets up its diag logger
 * (from `OTEL_LOG_LEVEL`) only when it is constructed, after these values are
 * read, so a caller may hold the words back until then (sdk.ts does).
 */
export type Warn = (message: string) => void;
const diagWarn: Warn = (message) => diag.warn(message);
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
function otlpProtocol(env: NodeJS.ProcessEnv, signal: "TRACES" | "METRICS", warn: Warn): Protocol {
  const chosen =
    (env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "").trim() || "http/protobuf";
  if ((OTLP_PROTOCOLS as readonly string[]).includes(chosen)) return chosen as Protocol;
  warn(
    `unsupported OTLP ${signal.toLowerCase()} protocol "${chosen}" (use one of ${OTLP_PROTOCOLS.join(", ")}); using http/protobuf`,
  );
  return "http/protobuf";
}

async function otlpTraceExporterOf(env: NodeJS.ProcessEnv, warn: Warn, config: OtlpConfig = {}): Promise<SpanExporter> {
  switch (otlpProtocol(env, "TRACES", warn)) {
    case "http/json":
      return new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter(config);
    case "grpc":
      return new (await import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter(config);
    case "http/protobuf":
      return new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter(config);
  }
}

/** The OTLP span exporter of the environment, with its quick twin for the process's last flush (leaving.ts). */
async function otlpTraceExporter(env: NodeJS.ProcessEnv, warn: Warn): Promise<SpanExporter> {
  const live = await otlpTraceExporterOf(env, warn);
  // Said once: the twin reads the same settings.
  const quick = await otlpTraceExporterOf(env, () => {}, { timeoutMillis: LEAVING_EXPORT_TIMEOUT_MS });
  return new LeavingAwareSpanExporter(live, () => quick);
}

async function otlpMetricExporterOf(
  env: NodeJS.ProcessEnv,
  warn: Warn,
  config: OtlpConfig = {},
): Promise<PushMetricExporter> {
  switch (otlpProtocol(env, "METRICS", warn)) {
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
export async function metricReadersFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  warn: Warn = diagWarn,
): Promise<MetricReader[]> {
  const names = list(env.OTEL_METRICS_EXPORTER);
  if (names.length === 0) names.push("otlp");
  if (names.includes("none")) return [];
  const { ConsoleMetricExporter, PeriodicExportingMetricReader } = await import("@opentelemetry/sdk-metrics");
  const readers: MetricReader[] = [];
  const interval = nonNegative(env.OTEL_METRIC_EXPORT_INTERVAL);
  const timeout = nonNegative(env.OTEL_METRIC_EXPORT_TIMEOUT);
  for (const name of names) {
    if (name === "otlp") {
      const live = await otlpMetricExporterOf(env, warn);
      const quick = await otlpMetricExporterOf(env, () => {}, { timeoutMillis: LEAVING_EXPORT_TIMEOUT_MS });
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
      warn(`OTEL_METRICS_EXPORTER: unsupported exporter "${name}" ignored (use otlp, console, prometheus, none)`);
    }
  }
  return readers;
}

/**
 * The span processors `OTEL_TRACES_EXPORTER` asks for, chosen by the Node
 * SDK's rules: empty means `otlp`; `none` first means none; `none` among
 * others is ignored in favour of `otlp`, with a warning; `null` is skipped.
 */
export async function spanProcessorsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  warn: Warn = diagWarn,
): Promise<SpanProcessor[]> {
  let names = list(env.OTEL_TRACES_EXPORTER).filter((name) => name !== "null");
  if (names[0] === "none") return [];
  if (names.length === 0) names = ["otlp"];
  else if (names.includes("none")) {
    warn('OTEL_TRACES_EXPORTER contains "none" along with other exporters: using otlp');
    names = ["otlp"];
  }
  const { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor } = await import("@opentelemetry/sdk-trace");
  const batched = (exporter: SpanExporter) =>
    new BatchSpanProcessor({
      exporter,
      maxQueueSize: nonNegative(env.OTEL_BSP_MAX_QUEUE_SIZE),
      scheduledDelayMillis: nonNegative(env.OTEL_BSP_SCHEDULE_DELAY),
      exportTimeoutMillis: nonNegative(env.OTEL_BSP_EXPORT_TIMEOUT),
      maxExportBatchSize: nonNegative(env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE),
    });
  const processors: SpanProcessor[] = [];
  for (const name of names) {
    if (name === "otlp") {
      processors.push(batched(await otlpTraceExporter(env, warn)));
    } else if (name === "zipkin") {
      // Configured by OTEL_EXPORTER_ZIPKIN_ENDPOINT, as in the SDK.
      processors.push(batched(new (await import("@opentelemetry/exporter-zipkin")).ZipkinExporter()));
    } else if (name === "console") {
      processors.push(new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() }));
    } else {
      warn(`OTEL_TRACES_EXPORTER: unsupported exporter "${name}" ignored (use ${TRACE_EXPORTERS.join(", ")})`);
    }
  }
  return processors;
}
