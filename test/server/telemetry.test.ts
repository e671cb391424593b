/**
 * The tracker's own telemetry, exported by the real OpenTelemetry SDK as
 * OTLP/HTTP JSON to the test OTLP receiver: one SERVER span per tool call,
 * joining the caller's trace from `params._meta`, and the tracker's metrics.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, type TestContext, test } from "node:test";
import { SessionStartResult } from "../../src/contract/schemas.ts";
import { connectHttp, connectStdio, endPayload, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { type OtlpReceiver, type ReceivedMetric, startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";
import { waitFor } from "../helpers/wait.ts";

function traceparent() {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

describe("the tracker's own telemetry", () => {
  let receiver: OtlpReceiver;
  let tracker: TrackerProcess;
  let otelEnv: Record<string, string>;

  before(async () => {
    receiver = await startOtlpReceiver();
    otelEnv = receiver.env({ metrics: true });
    tracker = await startTracker({ lease: 1, env: otelEnv });
  });
  after(async () => {
    await tracker?.stop();
    await receiver?.close();
  });

  test("each tool call is a SERVER span that joins the caller's trace from params._meta", async (t) => {
    const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
    t.after(() => client.close());
    const caller = traceparent();
    const localId = randomUUID();
    const start = await client.call(
      "track_session_start",
      startPayload({ metadata: { local_session_id: localId, trace_id: caller.traceId } }),
      { traceparent: caller.header },
    );
    const sessionId = SessionStartResult.parse(start.result).session_id;

    const span = await receiver.waitForSpan(
      (s) => s.traceId === caller.traceId && s.name === "tools/call track_session_start",
    );
    assert.equal(span.parentSpanId, caller.spanId, "parented by the caller's span");
    assert.equal(span.kind, 2, "SERVER");
    assert.deepEqual(
      {
        ...span.attributes,
        "jsonrpc.request.id": typeof span.attributes["jsonrpc.request.id"],
      },
      {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "track_session_start",
        "gen_ai.operation.name": "execute_tool",
        "jsonrpc.request.id": "string",
        "network.transport": "tcp",
        "mcp.protocol.version": "2025-11-25",
        // session.id is the shell's own id, as on the shell's session span; the tracker's has its own name.
        "session.id": localId,
        "shell.tracker.session_id": sessionId,
        "shell.component.name": "mahavishnu",
        "shell.tool.status": "tracked",
      },
    );
    assert.equal(span.resource["service.name"], "shell-sessions-tracker");
  });

  test("a heartbeat is measured, not traced: no span, a point in the duration histogram", async (t) => {
    const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
    t.after(() => client.close());
    const caller = traceparent();
    const start = await client.call("track_session_start", startPayload(), { traceparent: caller.header });
    const sessionId = SessionStartResult.parse(start.result).session_id as string;
    const beat = await client.call(
      "heartbeat_session",
      { session_id: sessionId, timestamp: new Date().toISOString(), event_type: "heartbeat" },
      { traceparent: caller.header },
    );
    assert.equal(beat.result.status, "alive");
    await client.call("track_session_end", endPayload(sessionId), { traceparent: caller.header });
    // Spans are exported in the order they end: the heartbeat's, had there been one, comes before this.
    await receiver.waitForSpan((s) => s.traceId === caller.traceId && s.name === "tools/call track_session_end");
    const inTrace = receiver.spans.filter((s) => s.traceId === caller.traceId).map((s) => s.name);
    assert.deepEqual(inTrace.sort(), ["tools/call track_session_end", "tools/call track_session_start"]);
    await receiver.waitForMetric(
      "mcp.server.operation.duration",
      (m) =>
        m.resource["process.pid"] === tracker.pid &&
        m.dataPoints.some(
          (p) =>
            p.attributes["gen_ai.tool.name"] === "heartbeat_session" && p.attributes["shell.tool.status"] === "alive",
        ),
    );
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
    const span = await receiver.waitForSpan((s) => s.traceId === caller.traceId);
    assert.equal(span.attributes["error.type"], "unauthenticated");
    assert.equal(span.attributes["shell.tool.status"], "error");
    assert.equal(span.status.code, 2, "ERROR");
    assert.ok(!receiver.includesText(badToken), "the token appears in no exported span or metric");
  });

  /** A health_check over stdio, from a tracker spawned with `env`, with a caller's trace context in `_meta`. */
  async function stdioHealthCheck(t: TestContext, env: Record<string, string>) {
    const client = await connectStdio({
      store: tracker.store,
      stateDir: tracker.stateDir,
      secret: tracker.secret as string,
      environmentToken: await tokenFor(tracker.secret as string, "mahavishnu"),
      env,
    });
    t.after(() => client.close());
    const caller = traceparent();
    await client.call("health_check", {}, { traceparent: caller.header });
    return { caller, span: await receiver.waitForSpan((s) => s.traceId === caller.traceId) };
  }

  test("over stdio the span joins the caller's trace too, with network.transport pipe", async (t) => {
    const { caller, span } = await stdioHealthCheck(t, otelEnv);
    assert.equal(span.parentSpanId, caller.spanId);
    assert.equal(span.name, "tools/call health_check");
    assert.equal(span.attributes["network.transport"], "pipe");
  });

  test("_meta is read as W3C even when OTEL_PROPAGATORS chooses b3 for the tracker's own HTTP", async (t) => {
    const { caller, span } = await stdioHealthCheck(t, { ...otelEnv, OTEL_PROPAGATORS: "b3" });
    assert.equal(span.parentSpanId, caller.spanId, "parented by the caller's span");
  });

  test("metrics: operation duration by tool and outcome, sessions started, abandoned and active", async (t) => {
    const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
    t.after(() => client.close());
    // Started and never heard from again: the one-second lease abandons it.
    await client.call("track_session_start", startPayload({ hostname: "metrics-host" }));

    // The stdio server of another test exports to the same receiver: read only this process's metrics.
    const ours = (m: ReceivedMetric) => m.resource["process.pid"] === tracker.pid;
    const total = (m: ReceivedMetric) => m.dataPoints.reduce((n, p) => n + (p.value ?? 0), 0);
    for (const counter of ["shell.tracker.sessions.started", "shell.tracker.sessions.abandoned"]) {
      const counted = await receiver.waitForMetric(counter, (m) => ours(m) && total(m) >= 1);
      assert.equal(counted.type, "sum");
    }
    const duration = await receiver.waitForMetric("mcp.server.operation.duration", ours);
    assert.equal(duration.unit, "s");
    assert.equal(duration.type, "histogram");
    const startPoint = duration.dataPoints.find(
      (p) =>
        p.attributes["gen_ai.tool.name"] === "track_session_start" && p.attributes["shell.tool.status"] === "tracked",
    );
    assert.ok(startPoint && Number(startPoint.count) >= 1);
    assert.equal(startPoint.attributes["mcp.method.name"], "tools/call");
    const active = await receiver.waitForMetric("shell.tracker.sessions.active", ours);
    assert.equal(active.type, "gauge");
    assert.ok(active.dataPoints.length);
  });
});

test("the tracker reads OTEL_SDK_DISABLED and service.name as the SDK does", async (t) => {
  const log = async (env: Record<string, string>) => {
    const tracker = await startTracker({
      env: { OTEL_TRACES_EXPORTER: "none", OTEL_METRICS_EXPORTER: "none", ...env },
    });
    t.after(() => tracker.stop());
    return waitFor(
      () => `the telemetry line in: ${tracker.log}`,
      () => /^.*telemetry: .*$/m.exec(tracker.log)?.[0],
    );
  };
  // `1` is no boolean to the SDK: it warns and keeps exporting, so the server must not say "disabled".
  assert.match(
    await log({ OTEL_SDK_DISABLED: "1", OTEL_RESOURCE_ATTRIBUTES: "team=ops,service.name=audit%20tracker" }),
    /SDK on \(service\.name audit tracker;/,
  );
  assert.match(await log({ OTEL_SDK_DISABLED: "TRUE" }), /SDK disabled/);
  assert.match(
    await log({ OTEL_SERVICE_NAME: "named", OTEL_RESOURCE_ATTRIBUTES: "service.name=other" }),
    /service\.name named;/,
  );
});
