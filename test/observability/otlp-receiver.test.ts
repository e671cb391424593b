/**
 * The test OTLP receiver decodes what the OpenTelemetry JS exporters really
 * send: spans over http/protobuf and http/json, metrics over http/json, all
 * from a real SDK in this process. (Metrics over http/protobuf come from the
 * register entry in otlp-export.test.ts.)
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { context, SpanKind, SpanStatusCode, trace, ValueType } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPTraceExporter as JsonTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtoTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { SimpleSpanProcessor, type SpanExporter, TracerProvider } from "@opentelemetry/sdk-trace";
import { decodeTraces, type OtlpReceiver, startOtlpReceiver } from "../helpers/otlp-receiver.ts";

const resource = resourceFromAttributes({ "service.name": "receiver-check", "host.name": "test-host" });

describe("test OTLP receiver", () => {
  let otlp: OtlpReceiver;
  before(async () => {
    otlp = await startOtlpReceiver();
  });
  after(() => otlp.close());

  async function exportSpan(exporter: SpanExporter, name: string): Promise<{ traceId: string; spanId: string }> {
    const provider = new TracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    const tracer = provider.getTracer("receiver-check-scope", "1.2.3");
    const parent = tracer.startSpan(`${name}.parent`);
    const ids = parent.spanContext();
    const child = tracer.startSpan(
      name,
      {
        kind: SpanKind.CLIENT,
        attributes: { "a.string": "x", "a.int": 42, "a.double": 1.5, "a.bool": true, "a.list": ["p", "q"] },
      },
      trace.setSpan(context.active(), parent),
    );
    child.addEvent("happened", { "e.n": 7 });
    child.setStatus({ code: SpanStatusCode.ERROR, message: "boom" });
    child.end();
    parent.end();
    await provider.forceFlush();
    await provider.shutdown();
    return { traceId: ids.traceId, spanId: ids.spanId };
  }

  for (const [encoding, make] of [
    ["http/protobuf", () => new ProtoTraceExporter({ url: `${otlp.url}/v1/traces` })],
    ["http/json", () => new JsonTraceExporter({ url: `${otlp.url}/v1/traces` })],
  ] as const) {
    it(`decodes spans sent over ${encoding}`, async () => {
      const name = `check.${encoding}`;
      const parent = await exportSpan(make(), name);
      const span = await otlp.waitForSpan((s) => s.name === name);
      assert.equal(span.traceId, parent.traceId);
      assert.equal(span.parentSpanId, parent.spanId);
      assert.match(span.spanId, /^[0-9a-f]{16}$/);
      assert.equal(span.kind, 3);
      assert.deepEqual(span.attributes, {
        "a.string": "x",
        "a.int": 42,
        "a.double": 1.5,
        "a.bool": true,
        "a.list": ["p", "q"],
      });
      assert.deepEqual(span.status, { code: 2, message: "boom" });
      assert.equal(span.events[0]?.name, "happened");
      assert.deepEqual(span.events[0]?.attributes, { "e.n": 7 });
      assert.ok(span.endTimeUnixNano >= span.startTimeUnixNano && span.startTimeUnixNano > 0n);
      assert.deepEqual(span.scope, { name: "receiver-check-scope", version: "1.2.3" });
      assert.equal(span.resource["service.name"], "receiver-check");
      assert.ok(otlp.requests.some((r) => r.contentType.includes(encoding === "http/json" ? "json" : "protobuf")));
      assert.deepEqual(otlp.errors, []);
    });
  }

  it("decodes metrics sent over http/json, with units, types and histogram buckets", async () => {
    const exporter = new OTLPMetricExporter({ url: `${otlp.url}/v1/metrics` });
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ resource, readers: [reader] });
    const meter = provider.getMeter("receiver-check-scope");
    meter.createCounter("check.count", { unit: "{event}", valueType: ValueType.INT }).add(3, { k: "v" });
    meter.createUpDownCounter("check.level", { unit: "{session}" }).add(-2);
    meter
      .createHistogram("check.duration", { unit: "s", advice: { explicitBucketBoundaries: [1, 5] } })
      .record(2, { k: "w" });
    await provider.forceFlush();
    await provider.shutdown();

    const count = await otlp.waitForMetric("check.count");
    assert.equal(count.type, "sum");
    assert.equal(count.isMonotonic, true);
    assert.equal(count.unit, "{event}");
    assert.deepEqual(
      count.dataPoints.map((p) => [p.attributes, p.value]),
      [[{ k: "v" }, 3]],
    );
    const level = await otlp.waitForMetric("check.level");
    assert.equal(level.isMonotonic, false);
    assert.equal(level.dataPoints[0]?.value, -2);
    const duration = await otlp.waitForMetric("check.duration");
    assert.equal(duration.type, "histogram");
    assert.equal(duration.unit, "s");
    assert.deepEqual(duration.dataPoints[0]?.explicitBounds, [1, 5]);
    assert.deepEqual(duration.dataPoints[0]?.bucketCounts, [0, 1, 0]);
    assert.equal(duration.dataPoints[0]?.count, 1);
    assert.equal(duration.dataPoints[0]?.sum, 2);
    assert.equal(duration.resource["host.name"], "test-host");
  });

  it("refuses a body that is not OTLP, and says so", async () => {
    const response = await fetch(`${otlp.url}/v1/traces`, {
      method: "POST",
      headers: { "content-type": "application/x-protobuf" },
      body: new Uint8Array([0x0a, 0xff, 0xff, 0xff]),
    });
    assert.equal(response.status, 400);
    assert.ok(otlp.errors.length > 0);
    assert.throws(() => decodeTraces(new Uint8Array([0x0a, 0x05, 0x01]), "application/x-protobuf"));
  });
});
