/**
 * The tracker's own telemetry, exported by the real OpenTelemetry SDK with
 * `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` to a small OTLP/HTTP receiver in
 * this test (plain JSON parsing): one SERVER span per tool call, joining the
 * caller's trace from `params._meta`, and the tracker's metrics.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { SessionStartResult } from "../../src/contract/schemas.ts";
import { connectHttp, connectStdio, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: OtlpAttribute[];
  status?: { code?: number };
}
interface OtlpDataPoint {
  attributes?: OtlpAttribute[];
  asInt?: string | number;
  asDouble?: number;
  count?: string | number;
}
interface OtlpMetric {
  name: string;
  unit?: string;
  sum?: { dataPoints: OtlpDataPoint[] };
  gauge?: { dataPoints: OtlpDataPoint[] };
  histogram?: { dataPoints: OtlpDataPoint[] };
}

/** OTLP/JSON carries ids as hex; accept base64 too, as some encoders send it. */
function hexId(id: string | undefined): string {
  if (id === undefined || id === "") return "";
  return /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, "base64").toString("hex");
}

function attributes(list: OtlpAttribute[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) {
    out[key] =
      value.stringValue ??
      (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
      value.boolValue ??
      value.doubleValue;
  }
  return out;
}

class OtlpReceiver {
  readonly spans: (OtlpSpan & { resource: Record<string, unknown> })[] = [];
  readonly metrics: (OtlpMetric & { resource: Record<string, unknown> })[] = [];
  /** Every body received, to check that no token ever reaches a span or metric. */
  raw = "";
  #server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => {
        body += c;
      });
      req.on("end", () => {
        this.raw += body;
        const data = JSON.parse(body) as Record<string, unknown>;
        if (req.url === "/v1/traces") {
          for (const rs of (data.resourceSpans ?? []) as {
            resource?: { attributes?: OtlpAttribute[] };
            scopeSpans: { spans: OtlpSpan[] }[];
          }[]) {
            const resource = attributes(rs.resource?.attributes);
            for (const ss of rs.scopeSpans) for (const span of ss.spans) this.spans.push({ ...span, resource });
          }
        } else if (req.url === "/v1/metrics") {
          for (const rm of (data.resourceMetrics ?? []) as {
            resource?: { attributes?: OtlpAttribute[] };
            scopeMetrics: { metrics: OtlpMetric[] }[];
          }[]) {
            const resource = attributes(rm.resource?.attributes);
            for (const sm of rm.scopeMetrics)
              for (const metric of sm.metrics) this.metrics.push({ ...metric, resource });
          }
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }
}

async function pollUntil<T>(what: string, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function traceparent() {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

describe("the tracker's own telemetry", () => {
  const receiver = new OtlpReceiver();
  let tracker: TrackerProcess;
  let otelEnv: Record<string, string>;

  before(async () => {
    await receiver.start();
    otelEnv = {
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_METRICS_EXPORTER: "otlp",
      OTEL_LOGS_EXPORTER: "none",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "100",
      OTEL_METRIC_EXPORT_INTERVAL: "300",
    };
    tracker = await startTracker({ lease: 1, env: otelEnv });
  });
  after(async () => {
    await tracker?.stop();
    await receiver.stop();
  });

  test("each tool call is a SERVER span that joins the caller's trace from params._meta", async (t) => {
    const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
    t.after(() => client.close());
    const caller = traceparent();
    const start = await client.call("track_session_start", startPayload(), { traceparent: caller.header });
    const sessionId = SessionStartResult.parse(start.result).session_id;

    const span = await pollUntil("the start span", () =>
      receiver.spans.find((s) => hexId(s.traceId) === caller.traceId && s.name === "tools/call track_session_start"),
    );
    assert.equal(hexId(span.parentSpanId), caller.spanId, "parented by the caller's span");
    assert.equal(span.kind, 2, "SERVER");
    assert.deepEqual(
      {
        ...attributes(span.attributes),
        "jsonrpc.request.id": typeof attributes(span.attributes)["jsonrpc.request.id"],
      },
      {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "track_session_start",
        "gen_ai.operation.name": "execute_tool",
        "jsonrpc.request.id": "string",
        "network.transport": "tcp",
        "session.id": sessionId,
        "shell.component.name": "mahavishnu",
        "shell.tool.status": "tracked",
      },
    );
    assert.equal(span.resource["service.name"], "shell-sessions-tracker");
  });

  test("a failed call's span carries error.type and an error status, and no token reaches the telemetry", async (t) => {
    const client = await connectHttp(tracker.url);
    t.after(() => client.close());
    const caller = traceparent();
    const badToken = `eyJhbGciOiJIUzI1NiJ9.${randomBytes(24).toString("base64url")}.${randomBytes(32).toString("base64url")}`;
    const r = await client.call("track_session_start", startPayload({ token: badToken }), {
      traceparent: caller.header,
    });
    assert.equal(r.result.code, "unauthenticated");
    const span = await pollUntil("the failed span", () =>
      receiver.spans.find((s) => hexId(s.traceId) === caller.traceId),
    );
    const attrs = attributes(span.attributes);
    assert.equal(attrs["error.type"], "unauthenticated");
    assert.equal(attrs["shell.tool.status"], "error");
    assert.equal(span.status?.code, 2, "ERROR");
    assert.ok(!receiver.raw.includes(badToken), "the token appears in no exported span or metric");
  });

  test("over stdio the span joins the caller's trace too, with network.transport pipe", async (t) => {
    const token = await tokenFor(tracker.secret as string, "mahavishnu");
    const client = await connectStdio({
      store: tracker.store,
      stateDir: tracker.stateDir,
      secret: tracker.secret as string,
      environmentToken: token,
      env: otelEnv,
    });
    t.after(() => client.close());
    const caller = traceparent();
    await client.call("health_check", {}, { traceparent: caller.header });
    const span = await pollUntil("the stdio span", () =>
      receiver.spans.find((s) => hexId(s.traceId) === caller.traceId),
    );
    assert.equal(hexId(span.parentSpanId), caller.spanId);
    assert.equal(span.name, "tools/call health_check");
    assert.equal(attributes(span.attributes)["network.transport"], "pipe");
  });

  test("metrics: operation duration by tool and outcome, sessions started, abandoned and active", async (t) => {
    const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
    t.after(() => client.close());
    // Started and never heard from again: the one-second lease abandons it.
    await client.call("track_session_start", startPayload({ hostname: "metrics-host" }));

    // The stdio server of another test exports to the same receiver: read only this process's metrics.
    const latest = (name: string) =>
      receiver.metrics.filter((m) => m.name === name && m.resource["process.pid"] === tracker.pid).at(-1);
    const counterTotal = (name: string) =>
      (latest(name)?.sum?.dataPoints ?? []).reduce((n, p) => n + Number(p.asInt ?? p.asDouble ?? 0), 0);

    await pollUntil("the started and abandoned counters", () =>
      counterTotal("shell.tracker.sessions.started") >= 1 && counterTotal("shell.tracker.sessions.abandoned") >= 1
        ? true
        : undefined,
    );
    const duration = await pollUntil("the duration histogram", () => latest("mcp.server.operation.duration"));
    assert.equal(duration.unit, "s");
    const startPoint = duration.histogram?.dataPoints.find((p) => {
      const a = attributes(p.attributes);
      return a["gen_ai.tool.name"] === "track_session_start" && a["shell.tool.status"] === "tracked";
    });
    assert.ok(startPoint && Number(startPoint.count) >= 1);
    assert.equal(attributes(startPoint.attributes)["mcp.method.name"], "tools/call");
    const active = await pollUntil("the active gauge", () => latest("shell.tracker.sessions.active"));
    assert.ok(active.gauge?.dataPoints.length);
  });
});
