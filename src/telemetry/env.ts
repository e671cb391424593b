/**
 * Trace exporters as the standard `OTEL_*` variables configure them.
 *
 * The Node SDK builds these itself only when given no span processors at
 * all; as we add the session delivery processors to the same tracer
 * provider, we build the exporters it would have built and pass the whole
 * list. Exporter packages are loaded only when selected.
 */
import { diag } from "@opentelemetry/api";
import type { SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace";

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

async function otlpTraceExporter(env: NodeJS.ProcessEnv): Promise<SpanExporter> {
  const protocol =
    (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "").trim() || "http/protobuf";
  switch (protocol) {
    case "http/json":
      return new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter();
    case "grpc":
      return new (await import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter();
    case "http/protobuf":
      return new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter();
    default:
      diag.warn(
        `unsupported OTLP traces protocol "${protocol}" (use one of ${OTLP_PROTOCOLS.join(", ")}); using http/protobuf`,
      );
      return new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter();
  }
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
