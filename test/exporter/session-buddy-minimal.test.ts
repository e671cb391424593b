/**
 * Delivery against a server with only the real Session-Buddy's three tools,
 * over real HTTP and real stdio: the shapes the real one sends, no
 * heartbeat, list or get.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { propagation, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { TraceState } from "@opentelemetry/core";
import {
  canonicalUuidV4,
  type SessionEndEvent,
  type SessionStartEvent,
  TIMESTAMP_PATTERN,
} from "../../src/contract/index.ts";
import {
  ATTR_SHELL_CIRCUIT_STATE,
  ATTR_SHELL_EMISSION_OUTCOME,
  ATTR_SHELL_EVENT_TYPE,
  METRIC_MCP_CLIENT_OPERATION_DURATION,
  METRIC_OTEL_SDK_EXPORTER_OPERATION_DURATION,
  METRIC_OTEL_SDK_EXPORTER_SPAN_EXPORTED,
  METRIC_OTEL_SDK_EXPORTER_SPAN_INFLIGHT,
  METRIC_SHELL_EMISSION_DURATION,
  METRIC_SHELL_EXPORTER_CIRCUIT_STATE,
  METRIC_SHELL_SPOOL_DEPTH,
} from "../../src/semconv.ts";
import { minimalStdioCommand, readRecords } from "../helpers/session-buddy-minimal.ts";
import {
  deliveryEnv,
  endSession,
  harness,
  metricsProbe,
  minimalTracker,
  randomSecret,
  spoolStats,
  startSession,
  tempDir,
  trackerSessionId,
  waitFor,
} from "./support.ts";

function checkPair(records: ReturnType<typeof readRecords>, traceId: string, spanId: string) {
  assert.equal(records.length, 2, `exactly a start and an end: ${records.map((r) => r.tool).join(", ")}`);
  const [start, end] = records;
  assert.equal(start?.tool, "track_session_start");
  assert.equal(end?.tool, "track_session_end");
  const s = start?.args as SessionStartEvent & { metadata: Record<string, unknown> };
  assert.equal(s.event_version, "1.0");
  assert.equal(s.event_type, "session_start");
  assert.ok(canonicalUuidV4(s.event_id));
  assert.equal(s.component_name, "mahavishnu");
  assert.equal(s.shell_type, "MahavishnuShell");
  assert.match(s.timestamp, TIMESTAMP_PATTERN);
  assert.equal(s.pid, process.pid);
  assert.equal(typeof s.user.username, "string");
  assert.equal(typeof s.user.home, "string");
  assert.equal(s.hostname, hostname());
  assert.equal(typeof s.environment.python_version, "string");
  assert.equal(typeof s.environment.platform, "string");
  assert.equal(s.environment.cwd, process.cwd());
  assert.equal(s.metadata.trace_id, traceId);
  assert.equal(s.metadata.correlation_id, traceId);
  assert.equal(s.metadata.span_id, spanId);
  assert.equal(s.metadata.runtime, "nodejs");
  assert.equal(s.metadata.runtime_version, process.versions.node);
  assert.equal(s.metadata.component_version, "1.2.3");
  assert.deepEqual(s.metadata.adapters, ["redis", "postgres"]);
  assert.ok(canonicalUuidV4(String(s.metadata.local_session_id)));
  const e = end?.args as SessionEndEvent & { metadata: Record<string, unknown> };
  const sessionId = (start?.answer as { session_id: string } | undefined)?.session_id;
  assert.ok(sessionId);
  assert.equal(e.session_id, sessionId, "the end names the session the start returned");
  assert.equal(e.event_type, "session_end");
  assert.match(e.timestamp, TIMESTAMP_PATTERN);
  assert.ok(canonicalUuidV4(String(e.metadata.event_id)), "the end carries its own event_id for de-duplication");
  assert.notEqual(e.metadata.event_id, s.event_id);
  assert.equal(e.metadata.exit_reason, "exit_command");
  assert.equal(e.metadata.eval_count, 3);
  assert.equal(e.metadata.eval_error_count, 1);
  assert.equal(e.metadata.trace_id, traceId);
  const lengthMs = Date.parse(e.timestamp) - Date.parse(s.timestamp);
  assert.ok(Math.abs(Number(e.metadata.duration_seconds) * 1000 - lengthMs) <= 2, "duration matches the timestamps");
  for (const r of records) {
    assert.match(String(r.meta?.traceparent), new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`), "trace context in _meta");
  }
  return sessionId;
}

test("over HTTP: start then end, Session-Buddy 1.0 payloads, tracker id on the span, trace context in _meta, no extra tools", async (t) => {
  const { dir, record, server } = await minimalTracker(t);
  const metrics = metricsProbe(t);
  // Heartbeats every 50 ms would show up at once if the client used a tool the server does not list.
  const h = harness(t, deliveryEnv(dir, { SESSION_BUDDY_URL: server.url, SHELL_SESSIONS_HEARTBEAT_MS: "50" }), {
    meterProvider: metrics.meterProvider,
  });
  const span = startSession(h.provider);
  assert.equal(h.processor.delivery.pending, 1, "the start is queued, not sent, while onStart runs");
  assert.equal(readRecords(record).length, 0);
  await waitFor("the start to arrive", () => readRecords(record).length === 1);
  await trackerSessionId(span);
  await new Promise((r) => setTimeout(r, 300));
  endSession(span);
  await waitFor("the end to arrive", () => readRecords(record).length === 2);
  const { traceId, spanId } = span.spanContext();
  const sessionId = checkPair(readRecords(record), traceId, spanId);
  assert.equal(await trackerSessionId(span), sessionId);
  assert.equal(existsSync(join(dir, "spool.db")), false, "the happy path never touches the disk");
  assert.equal(await metrics.emissions("success", "session_start"), 1);
  assert.equal(await metrics.emissions("success", "session_end"), 1);
  const start = { [ATTR_SHELL_EVENT_TYPE]: "session_start", [ATTR_SHELL_EMISSION_OUTCOME]: "success" };
  assert.equal(await metrics.histogramCount(METRIC_SHELL_EMISSION_DURATION, start), 1, "latency by type and outcome");
  assert.equal(await metrics.histogramCount(METRIC_OTEL_SDK_EXPORTER_OPERATION_DURATION), 2);
  assert.equal(
    await metrics.histogramCount(METRIC_MCP_CLIENT_OPERATION_DURATION, { "gen_ai.tool.name": "track_session_end" }),
    1,
  );
  assert.equal(await metrics.value(METRIC_OTEL_SDK_EXPORTER_SPAN_EXPORTED), 2);
  assert.equal(await metrics.value(METRIC_OTEL_SDK_EXPORTER_SPAN_EXPORTED, { "error.type": "timeout" }), 0);
  assert.equal(await metrics.value(METRIC_OTEL_SDK_EXPORTER_SPAN_INFLIGHT), 0, "nothing left in flight");
  assert.equal(
    await metrics.value(METRIC_SHELL_EXPORTER_CIRCUIT_STATE, { [ATTR_SHELL_CIRCUIT_STATE]: "closed" }),
    1,
    "circuit closed",
  );
  assert.equal(await metrics.value(METRIC_SHELL_SPOOL_DEPTH), 0);
  assert.deepEqual(h.warnings, []);
  // The MCP client span joins the session's trace.
  const client = h.spans.getFinishedSpans().filter((s) => s.name.startsWith("tools/call "));
  assert.deepEqual(
    client.map((s) => s.name),
    ["tools/call track_session_start", "tools/call track_session_end"],
  );
  for (const s of client) {
    assert.equal(s.spanContext().traceId, traceId);
    assert.equal(s.parentSpanContext?.spanId, spanId);
  }
});

test("over stdio: the server is spawned with the command, and the same events arrive", async (t) => {
  const dir = tempDir(t);
  const record = join(dir, "calls.jsonl");
  const h = harness(t, deliveryEnv(dir, { SESSION_BUDDY_COMMAND: minimalStdioCommand({ record }) }));
  const span = startSession(h.provider);
  await waitFor("the start to arrive", () => readRecords(record).length === 1);
  await trackerSessionId(span);
  endSession(span);
  await waitFor("the end to arrive", () => readRecords(record).length === 2);
  const { traceId, spanId } = span.spanContext();
  checkPair(readRecords(record), traceId, spanId);
  assert.deepEqual(h.warnings, []);
});

test("auth: a token minted from SESSION_BUDDY_SECRET goes as the token argument and as a Bearer header", async (t) => {
  const secret = randomSecret();
  const { dir, record, server } = await minimalTracker(t, { secret });
  const h = harness(t, deliveryEnv(dir, { SESSION_BUDDY_URL: server.url, SESSION_BUDDY_SECRET: secret }));
  const span = startSession(h.provider, { component: "oneiric" });
  await waitFor("the start", () => readRecords(record).length === 1);
  endSession(span);
  await waitFor("the end", () => readRecords(record).length === 2);
  for (const call of readRecords(record)) {
    assert.equal(call.tokenPresent, true);
    assert.equal(call.tokenComponent, "oneiric", "the token is issued to the session's component");
    assert.equal(call.authorization, true, "Bearer header on HTTP");
    assert.equal(typeof call.answer, "object");
  }
  assert.ok(!h.logs.join("").includes(secret), "the secret is never logged");
});

test("auth rejection: counted as rejected, logged once with the reason, kept in the spool, delivered after the fix", async (t) => {
  const secret = randomSecret();
  const { dir, record, server } = await minimalTracker(t, { secret });
  const metrics = metricsProbe(t);
  const wrong = randomSecret();
  const env = deliveryEnv(dir, { SESSION_BUDDY_URL: server.url, SESSION_BUDDY_SECRET: wrong });
  const h = harness(t, env, { meterProvider: metrics.meterProvider });
  const spans = [startSession(h.provider), startSession(h.provider)];
  for (const span of spans) endSession(span);
  await waitFor("four events in the spool", () => {
    const stats = spoolStats(dir);
    return stats !== undefined && stats.pending + stats.rejected === 4;
  });
  const attempts = readRecords(record).length;
  assert.ok(attempts >= 1 && attempts <= 2, `no hot loop of retries for a rejection (${attempts} calls)`);
  assert.ok((await metrics.emissions("rejected")) >= 1, "counted as rejected");
  const rejections = h.warnings.filter((w) => /refused our credentials/.test(w));
  assert.equal(rejections.length, 1, `logged once: ${h.warnings.join("")}`);
  assert.match(rejections[0] ?? "", /Authentication failed/);
  assert.match(rejections[0] ?? "", /shell-sessions spool drain/);
  for (const line of h.logs) {
    assert.ok(!line.includes(wrong) && !/eyJ[\w-]+\.[\w-]+\./.test(line), "neither secret nor token in the log");
  }
  await h.provider.shutdown();

  // The fix: the right secret. An explicit drain delivers everything, starts before ends.
  const { execFileSync } = await import("node:child_process");
  const out = execFileSync(process.execPath, ["src/cli/main.ts", "spool", "drain"], {
    env: { ...env, SESSION_BUDDY_SECRET: secret },
    encoding: "utf8",
  });
  assert.match(out, /delivered 4, rejected 0, still waiting 0/);
  const delivered = readRecords(record).filter((r) => typeof r.answer === "object");
  assert.equal(delivered.length, 4);
  const started = new Set<string>();
  for (const call of delivered) {
    const sid = (call.answer as { session_id: string }).session_id;
    if (call.tool === "track_session_start") started.add(sid);
    else assert.ok(started.has(String(call.args.session_id)), "each end after its start, with its session id");
  }
});

test("tracestate and baggage of the session's context travel in _meta too", async (t) => {
  const { dir, record, server } = await minimalTracker(t);
  const h = harness(t, deliveryEnv(dir, { SESSION_BUDDY_URL: server.url }));
  let parent = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: 1,
    traceState: new TraceState("vendor=opaque"),
  });
  parent = propagation.setBaggage(parent, propagation.createBaggage({ "operator.ticket": { value: "OPS-42" } }));
  const span = startSession(h.provider, {}, parent);
  endSession(span);
  await waitFor("start and end", () => readRecords(record).length === 2);
  for (const call of readRecords(record)) {
    assert.match(String(call.meta?.traceparent), /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    assert.equal(call.meta?.tracestate, "vendor=opaque");
    assert.equal(call.meta?.baggage, "operator.ticket=OPS-42");
  }
});
