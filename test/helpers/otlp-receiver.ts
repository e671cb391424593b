/**
 * An OTLP/HTTP receiver for tests: a node:http server on 127.0.0.1 (free
 * port) that accepts trace and metric exports in both OTLP/HTTP encodings,
 * `application/x-protobuf` and `application/json` (gzip or not), and
 * decodes them into plain spans and metrics.
 *
 *   const otlp = await startOtlpReceiver();
 *   t.after(() => otlp.close());
 *   // child env: OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url
 *   const span = await otlp.waitForSpan((s) => s.name === "shell.session");
 *   const inTrace = await otlp.waitForSpans((s) => s.traceId === traceId, 2);
 *   const metric = await otlp.waitForMetric("shell.session.duration");
 *
 * `otlp.env()` is the environment that points a child's SDK here, and
 * `GET /ping` answers "pong": a request for instrumented code to make.
 *
 * `@opentelemetry/otlp-transformer` 0.301 only encodes requests (its
 * serializers decode responses, not requests), so protobuf bodies are
 * decoded with protobufjs and the OTLP message definitions below, written
 * from opentelemetry-proto's trace.proto, metrics.proto, common.proto and
 * resource.proto (v1). Field names are those of OTLP/JSON, so both
 * encodings decode to the same objects. otlp-receiver.test.ts checks the
 * decoding against what the OpenTelemetry exporters really send.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import protobuf from "protobufjs/light.js";
import { Waiters } from "./wait.ts";

const DEFAULT_WAIT_MS = 30_000;
const MAX_BODY_BYTES = 16 * 1024 * 1024;

const f = (id: number, type: string, rule?: "repeated") => ({ id, type, ...(rule ? { rule } : {}) });

/** OTLP v1 messages; numbers and types from opentelemetry-proto. */
const OTLP_SCHEMA = {
  nested: {
    AnyValue: {
      oneofs: {
        value: {
          oneof: ["stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"],
        },
      },
      fields: {
        stringValue: f(1, "string"),
        boolValue: f(2, "bool"),
        intValue: f(3, "int64"),
        doubleValue: f(4, "double"),
        arrayValue: f(5, "ArrayValue"),
        kvlistValue: f(6, "KeyValueList"),
        bytesValue: f(7, "bytes"),
      },
    },
    ArrayValue: { fields: { values: f(1, "AnyValue", "repeated") } },
    KeyValueList: { fields: { values: f(1, "KeyValue", "repeated") } },
    KeyValue: { fields: { key: f(1, "string"), value: f(2, "AnyValue") } },
    InstrumentationScope: {
      fields: {
        name: f(1, "string"),
        version: f(2, "string"),
        attributes: f(3, "KeyValue", "repeated"),
        droppedAttributesCount: f(4, "uint32"),
      },
    },
    Resource: { fields: { attributes: f(1, "KeyValue", "repeated"), droppedAttributesCount: f(2, "uint32") } },

    ExportTraceServiceRequest: { fields: { resourceSpans: f(1, "ResourceSpans", "repeated") } },
    ResourceSpans: {
      fields: { resource: f(1, "Resource"), scopeSpans: f(2, "ScopeSpans", "repeated"), schemaUrl: f(3, "string") },
    },
    ScopeSpans: {
      fields: { scope: f(1, "InstrumentationScope"), spans: f(2, "Span", "repeated"), schemaUrl: f(3, "string") },
    },
    Span: {
      fields: {
        traceId: f(1, "bytes"),
        spanId: f(2, "bytes"),
        traceState: f(3, "string"),
        parentSpanId: f(4, "bytes"),
        name: f(5, "string"),
        kind: f(6, "int32"),
        startTimeUnixNano: f(7, "fixed64"),
        endTimeUnixNano: f(8, "fixed64"),
        attributes: f(9, "KeyValue", "repeated"),
        droppedAttributesCount: f(10, "uint32"),
        events: f(11, "SpanEvent", "repeated"),
        droppedEventsCount: f(12, "uint32"),
        links: f(13, "SpanLink", "repeated"),
        droppedLinksCount: f(14, "uint32"),
        status: f(15, "Status"),
        flags: f(16, "fixed32"),
      },
    },
    SpanEvent: {
      fields: {
        timeUnixNano: f(1, "fixed64"),
        name: f(2, "string"),
        attributes: f(3, "KeyValue", "repeated"),
        droppedAttributesCount: f(4, "uint32"),
      },
    },
    SpanLink: {
      fields: {
        traceId: f(1, "bytes"),
        spanId: f(2, "bytes"),
        traceState: f(3, "string"),
        attributes: f(4, "KeyValue", "repeated"),
        droppedAttributesCount: f(5, "uint32"),
        flags: f(6, "fixed32"),
      },
    },
    Status: { fields: { message: f(2, "string"), code: f(3, "int32") } },

    ExportMetricsServiceRequest: { fields: { resourceMetrics: f(1, "ResourceMetrics", "repeated") } },
    ResourceMetrics: {
      fields: { resource: f(1, "Resource"), scopeMetrics: f(2, "ScopeMetrics", "repeated"), schemaUrl: f(3, "string") },
    },
    ScopeMetrics: {
      fields: { scope: f(1, "InstrumentationScope"), metrics: f(2, "Metric", "repeated"), schemaUrl: f(3, "string") },
    },
    Metric: {
      oneofs: { data: { oneof: ["gauge", "sum", "histogram", "exponentialHistogram", "summary"] } },
      fields: {
        name: f(1, "string"),
        description: f(2, "string"),
        unit: f(3, "string"),
        gauge: f(5, "Gauge"),
        sum: f(7, "Sum"),
        histogram: f(9, "Histogram"),
        exponentialHistogram: f(10, "ExponentialHistogram"),
        summary: f(11, "Summary"),
        metadata: f(12, "KeyValue", "repeated"),
      },
    },
    Gauge: { fields: { dataPoints: f(1, "NumberDataPoint", "repeated") } },
    Sum: {
      fields: {
        dataPoints: f(1, "NumberDataPoint", "repeated"),
        aggregationTemporality: f(2, "int32"),
        isMonotonic: f(3, "bool"),
      },
    },
    Histogram: {
      fields: { dataPoints: f(1, "HistogramDataPoint", "repeated"), aggregationTemporality: f(2, "int32") },
    },
    ExponentialHistogram: {
      fields: { dataPoints: f(1, "ExponentialHistogramDataPoint", "repeated"), aggregationTemporality: f(2, "int32") },
    },
    Summary: { fields: { dataPoints: f(1, "SummaryDataPoint", "repeated") } },
    NumberDataPoint: {
      oneofs: { value: { oneof: ["asDouble", "asInt"] } },
      fields: {
        attributes: f(7, "KeyValue", "repeated"),
        startTimeUnixNano: f(2, "fixed64"),
        timeUnixNano: f(3, "fixed64"),
        asDouble: f(4, "double"),
        asInt: f(6, "sfixed64"),
        exemplars: f(5, "Exemplar", "repeated"),
        flags: f(8, "uint32"),
      },
    },
    HistogramDataPoint: {
      fields: {
        attributes: f(9, "KeyValue", "repeated"),
        startTimeUnixNano: f(2, "fixed64"),
        timeUnixNano: f(3, "fixed64"),
        count: f(4, "fixed64"),
        sum: f(5, "double"),
        bucketCounts: f(6, "fixed64", "repeated"),
        explicitBounds: f(7, "double", "repeated"),
        exemplars: f(8, "Exemplar", "repeated"),
        flags: f(10, "uint32"),
        min: f(11, "double"),
        max: f(12, "double"),
      },
    },
    ExponentialHistogramDataPoint: {
      fields: {
        attributes: f(1, "KeyValue", "repeated"),
        startTimeUnixNano: f(2, "fixed64"),
        timeUnixNano: f(3, "fixed64"),
        count: f(4, "fixed64"),
        sum: f(5, "double"),
        scale: f(6, "sint32"),
        zeroCount: f(7, "fixed64"),
        positive: f(8, "Buckets"),
        negative: f(9, "Buckets"),
        flags: f(10, "uint32"),
        exemplars: f(11, "Exemplar", "repeated"),
        min: f(12, "double"),
        max: f(13, "double"),
        zeroThreshold: f(14, "double"),
      },
    },
    Buckets: { fields: { offset: f(1, "sint32"), bucketCounts: f(2, "uint64", "repeated") } },
    SummaryDataPoint: {
      fields: {
        attributes: f(7, "KeyValue", "repeated"),
        startTimeUnixNano: f(2, "fixed64"),
        timeUnixNano: f(3, "fixed64"),
        count: f(4, "fixed64"),
        sum: f(5, "double"),
        quantileValues: f(6, "ValueAtQuantile", "repeated"),
        flags: f(8, "uint32"),
      },
    },
    ValueAtQuantile: { fields: { quantile: f(1, "double"), value: f(2, "double") } },
    Exemplar: {
      oneofs: { value: { oneof: ["asDouble", "asInt"] } },
      fields: {
        filteredAttributes: f(7, "KeyValue", "repeated"),
        timeUnixNano: f(2, "fixed64"),
        asDouble: f(3, "double"),
        asInt: f(6, "sfixed64"),
        spanId: f(4, "bytes"),
        traceId: f(5, "bytes"),
      },
    },
  },
};

const root = protobuf.Root.fromJSON(OTLP_SCHEMA);
const TraceRequest = root.lookupType("ExportTraceServiceRequest");
const MetricsRequest = root.lookupType("ExportMetricsServiceRequest");
/** Longs as decimal strings and bytes as base64, as in OTLP/JSON (except ids, which OTLP/JSON writes in hex). */
const TO_OBJECT = { longs: String, bytes: String, defaults: false, oneofs: false } as const;

// ---- Decoded shapes ----

export type AttributeValue = string | number | boolean | AttributeValue[] | { [key: string]: AttributeValue } | null;
export type Attributes = Record<string, AttributeValue>;

export interface Scope {
  name: string;
  version: string;
}

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Attributes;
  events: { name: string; timeUnixNano: bigint; attributes: Attributes }[];
  links: { traceId: string; spanId: string; attributes: Attributes }[];
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  scope: Scope;
  resource: Attributes;
}

export interface ReceivedDataPoint {
  attributes: Attributes;
  timeUnixNano: bigint;
  /** Gauge and sum points. */
  value?: number;
  /** Histogram points. */
  count?: number;
  sum?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
}

export interface ReceivedMetric {
  name: string;
  description: string;
  unit: string;
  type: "gauge" | "sum" | "histogram" | "exponentialHistogram" | "summary";
  /** For sums. */
  isMonotonic?: boolean;
  /** OTLP AggregationTemporality: 1 delta, 2 cumulative (sums and histograms). */
  temporality?: number;
  dataPoints: ReceivedDataPoint[];
  scope: Scope;
  resource: Attributes;
}

// ---- Normalising OTLP/JSON-shaped objects ----

type Json = Record<string, unknown>;
const asList = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
const asObject = (v: unknown): Json => (v !== null && typeof v === "object" ? (v as Json) : {});

function anyValue(v: unknown): AttributeValue {
  const value = asObject(v);
  if ("stringValue" in value) return String(value.stringValue);
  if ("boolValue" in value) return Boolean(value.boolValue);
  if ("intValue" in value) return Number(value.intValue);
  if ("doubleValue" in value) return Number(value.doubleValue);
  if ("arrayValue" in value) return asList(asObject(value.arrayValue).values).map(anyValue);
  if ("kvlistValue" in value) return attributes(asObject(value.kvlistValue).values);
  if ("bytesValue" in value) return String(value.bytesValue);
  return null;
}

function attributes(list: unknown): Attributes {
  return Object.fromEntries(asList(list).map((kv) => [String(kv.key), anyValue(kv.value)]));
}

function scope(v: unknown): Scope {
  const s = asObject(v);
  return { name: String(s.name ?? ""), version: String(s.version ?? "") };
}

const nanos = (v: unknown): bigint => BigInt(String(v ?? "0"));
const num = (v: unknown): number | undefined => (v === undefined || v === null ? undefined : Number(v));

/** OTLP/JSON writes ids in hex; protobufjs' toObject gives base64. */
type IdEncoding = "hex" | "base64";
function id(v: unknown, encoding: IdEncoding): string {
  if (typeof v !== "string" || v === "") return "";
  return encoding === "hex" ? v.toLowerCase() : Buffer.from(v, "base64").toString("hex");
}

export function spansFromRequest(request: unknown, ids: IdEncoding): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of asList(asObject(request).resourceSpans)) {
    const resource = attributes(asObject(rs.resource).attributes);
    for (const ss of asList(rs.scopeSpans)) {
      const s = scope(ss.scope);
      for (const span of asList(ss.spans)) {
        const status = asObject(span.status);
        spans.push({
          traceId: id(span.traceId, ids),
          spanId: id(span.spanId, ids),
          parentSpanId: id(span.parentSpanId, ids),
          name: String(span.name ?? ""),
          kind: Number(span.kind ?? 0),
          startTimeUnixNano: nanos(span.startTimeUnixNano),
          endTimeUnixNano: nanos(span.endTimeUnixNano),
          attributes: attributes(span.attributes),
          events: asList(span.events).map((e) => ({
            name: String(e.name ?? ""),
            timeUnixNano: nanos(e.timeUnixNano),
            attributes: attributes(e.attributes),
          })),
          links: asList(span.links).map((l) => ({
            traceId: id(l.traceId, ids),
            spanId: id(l.spanId, ids),
            attributes: attributes(l.attributes),
          })),
          status: { code: Number(status.code ?? 0), message: String(status.message ?? "") },
          scope: s,
          resource,
        });
      }
    }
  }
  return spans;
}

function dataPoint(p: Json): ReceivedDataPoint {
  const point: ReceivedDataPoint = { attributes: attributes(p.attributes), timeUnixNano: nanos(p.timeUnixNano) };
  const value = num(p.asDouble) ?? num(p.asInt);
  if (value !== undefined) point.value = value;
  if (p.count !== undefined) point.count = Number(p.count);
  if (p.sum !== undefined) point.sum = Number(p.sum);
  if (Array.isArray(p.bucketCounts)) point.bucketCounts = p.bucketCounts.map(Number);
  if (Array.isArray(p.explicitBounds)) point.explicitBounds = p.explicitBounds.map(Number);
  return point;
}

export function metricsFromRequest(request: unknown): ReceivedMetric[] {
  const metrics: ReceivedMetric[] = [];
  for (const rm of asList(asObject(request).resourceMetrics)) {
    const resource = attributes(asObject(rm.resource).attributes);
    for (const sm of asList(rm.scopeMetrics)) {
      const s = scope(sm.scope);
      for (const m of asList(sm.metrics)) {
        const type = (["gauge", "sum", "histogram", "exponentialHistogram", "summary"] as const).find((t) => t in m);
        if (type === undefined) continue;
        const data = asObject(m[type]);
        const metric: ReceivedMetric = {
          name: String(m.name ?? ""),
          description: String(m.description ?? ""),
          unit: String(m.unit ?? ""),
          type,
          dataPoints: asList(data.dataPoints).map(dataPoint),
          scope: s,
          resource,
        };
        if (data.isMonotonic !== undefined) metric.isMonotonic = Boolean(data.isMonotonic);
        if (type === "sum" && metric.isMonotonic === undefined) metric.isMonotonic = false;
        if (data.aggregationTemporality !== undefined) metric.temporality = Number(data.aggregationTemporality);
        metrics.push(metric);
      }
    }
  }
  return metrics;
}

/** Decodes an ExportTraceServiceRequest body of either OTLP/HTTP encoding. */
export function decodeTraces(body: Uint8Array, contentType: string): ReceivedSpan[] {
  if (contentType.includes("json")) return spansFromRequest(JSON.parse(Buffer.from(body).toString("utf8")), "hex");
  return spansFromRequest(TraceRequest.toObject(TraceRequest.decode(body), TO_OBJECT), "base64");
}

/** Decodes an ExportMetricsServiceRequest body of either OTLP/HTTP encoding. */
export function decodeMetrics(body: Uint8Array, contentType: string): ReceivedMetric[] {
  if (contentType.includes("json")) return metricsFromRequest(JSON.parse(Buffer.from(body).toString("utf8")));
  return metricsFromRequest(MetricsRequest.toObject(MetricsRequest.decode(body), TO_OBJECT));
}

// ---- The server ----

export interface ReceivedRequest {
  path: string;
  contentType: string;
  encoding: string;
}

export interface ReceiverEnvOptions {
  /** Export metrics here too (every 300 ms); default: metrics off. */
  metrics?: boolean;
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly metrics: ReceivedMetric[] = [];
  readonly requests: ReceivedRequest[] = [];
  /** Bodies that could not be decoded, with why: a test can assert there are none. */
  readonly errors: string[] = [];
  /** Every export body, uncompressed, so a test can check what never left a process. */
  readonly #bodies: Buffer[] = [];
  readonly #server: Server;
  readonly #waiters = new Waiters();

  constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  async listen(): Promise<void> {
    this.#server.listen(0, "127.0.0.1");
    await once(this.#server, "listening");
  }

  /** Base URL for OTEL_EXPORTER_OTLP_ENDPOINT (the exporters add /v1/traces and /v1/metrics). */
  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /**
   * Environment that makes a child's OpenTelemetry SDK export its spans (and,
   * if asked, its metrics) here as OTLP/HTTP JSON, with short delays. The
   * per-signal variables are set too, so none inherited can take precedence.
   */
  env(options: ReceiverEnvOptions = {}): Record<string, string> {
    const protocol = "http/json";
    return {
      OTEL_SDK_DISABLED: "false",
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_METRICS_EXPORTER: options.metrics ? "otlp" : "none",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_EXPORTER_OTLP_ENDPOINT: this.url,
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol,
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${this.url}/v1/traces`,
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: protocol,
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${this.url}/v1/metrics`,
      OTEL_BSP_SCHEDULE_DELAY: "100",
      OTEL_METRIC_EXPORT_INTERVAL: "300",
    };
  }

  /** Whether `text` appears in any export body received so far (either encoding keeps strings as UTF-8). */
  includesText(text: string): boolean {
    const needle = Buffer.from(text, "utf8");
    return this.#bodies.some((body) => body.includes(needle));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method === "GET" && path === "/ping") {
      res.writeHead(200, { "content-type": "text/plain" }).end("pong");
      return;
    }
    if (req.method !== "POST" || !["/v1/traces", "/v1/metrics", "/v1/logs"].includes(path)) {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(chunk as Buffer);
    }
    const contentType = String(req.headers["content-type"] ?? "");
    const encoding = String(req.headers["content-encoding"] ?? "");
    this.requests.push({ path, contentType, encoding });
    const json = contentType.includes("json");
    try {
      let body = Buffer.concat(chunks);
      if (encoding === "gzip") body = gunzipSync(body);
      this.#bodies.push(body);
      if (path === "/v1/traces") this.spans.push(...decodeTraces(body, contentType));
      if (path === "/v1/metrics") this.metrics.push(...decodeMetrics(body, contentType));
    } catch (error) {
      this.errors.push(`${path} (${contentType}): ${error instanceof Error ? error.message : String(error)}`);
      res.writeHead(400, { "content-type": "text/plain" }).end("undecodable OTLP request");
      return;
    }
    // An empty Export*ServiceResponse: no partial_success.
    res.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" }).end(json ? "{}" : "");
    this.#waiters.wake();
  }

  #waitFor<T>(find: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return this.#waiters.until(find, timeoutMs, () => {
      const seen = `spans: ${[...new Set(this.spans.map((s) => s.name))].join(", ") || "none"}; metrics: ${
        [...new Set(this.metrics.map((m) => m.name))].join(", ") || "none"
      }; decoding errors: ${this.errors.join("; ") || "none"}`;
      return new Error(`no ${what} within ${timeoutMs} ms (${seen})`);
    });
  }

  waitForSpan(match: (span: ReceivedSpan) => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<ReceivedSpan> {
    return this.#waitFor(() => this.spans.find(match), "matching span", timeoutMs);
  }

  /** Every span matching `match`, once at least `count` of them have arrived. */
  waitForSpans(
    match: (span: ReceivedSpan) => boolean,
    count = 1,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<ReceivedSpan[]> {
    return this.#waitFor(
      () => {
        const found = this.spans.filter(match);
        return found.length >= count ? found : undefined;
      },
      `${count} matching span(s)`,
      timeoutMs,
    );
  }

  /** The latest export of metric `name` that satisfies `match`. */
  waitForMetric(
    name: string,
    match: (metric: ReceivedMetric) => boolean = () => true,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<ReceivedMetric> {
    return this.#waitFor(
      () => this.metrics.findLast((m) => m.name === name && match(m)),
      `metric ${name} matching the test`,
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, "close").catch(() => {});
  }
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const receiver = new OtlpReceiver();
  await receiver.listen();
  return receiver;
}
