/**
 * The tracker's policies, in-process over real MCP (HTTP) and real SQLite:
 * an honest health_check (only `status` without a token; degraded when
 * writes fail; unavailable when nothing answers), a server-side cap on token
 * lifetime, clock sanity (future starts refused, ends before their start
 * clamped), replays scoped to the caller's component, and metric labels
 * from closed sets whatever exit reasons clients send.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { metrics } from "@opentelemetry/api";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { SignJWT } from "jose";
import { SessionEndResult, SessionStartResult } from "../../src/contract/schemas.ts";
import {
  ServerTelemetry,
  silentLogger,
  startTrackerServer,
  type TrackerOptions,
  TrackerTools,
} from "../../src/server/index.ts";
import { openStore } from "../../src/store/index.ts";
import type { SessionStore } from "../../src/store/types.ts";
import { connectHttp, endPayload, rawPost, startPayload, tokenFor, toolsCall } from "../helpers/mcp-client.ts";
import { randomSecret } from "../helpers/tracker.ts";

type After = { after(fn: () => Promise<void> | void): void };

async function tracker(t: After, options: TrackerOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-policies-"));
  const secret = randomSecret();
  const path = join(dir, "t.db");
  const server = await startTrackerServer({ store: `sqlite:${path}`, secret, port: 0, ...options });
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const client = await connectHttp(server.url, { token: await tokenFor(secret, "mahavishnu") });
  t.after(() => client.close());
  return { server, secret, client, path };
}

test("health_check without a token answers only its status; with a token that may read, the details", async (t) => {
  const { server, secret, client } = await tracker(t);
  const anonymous = await rawPost(server.url, toolsCall("health_check", {}));
  const result = (anonymous.json as { result: { structuredContent: unknown } }).result.structuredContent;
  assert.deepEqual(result, { status: "healthy" });
  const detailed = await client.call("health_check");
  assert.equal(detailed.result.status, "healthy");
  assert.equal(detailed.result.store, "sqlite");
  assert.equal(detailed.result.auth, "jwt");
  assert.equal(typeof detailed.result.version, "string");
  const writeOnly = await connectHttp(server.url, { token: await tokenFor(secret, "mahavishnu", ["sessions:write"]) });
  t.after(() => writeOnly.close());
  const refused = await writeOnly.call("health_check");
  assert.equal(refused.result.code, "permission_denied", "details need the read scope");
  const bad = await rawPost(server.url, toolsCall("health_check", { token: "not-a-jwt" }));
  assert.match(bad.text, /unauthenticated/, "a token that is given must be valid");
});

/** The real store, whose probe write goes to a read-only connection of the same file: SQLite's own refusal. */
function readOnlyWrites(store: SessionStore, path: string): SessionStore {
  const readOnly = new DatabaseSync(path, { readOnly: true });
  return Object.assign(Object.create(store) as SessionStore, {
    probeWrite: async () => {
      readOnly.exec("INSERT INTO tracker_health (probe, checked_at) VALUES ('x', 'y')");
    },
    close: async () => {
      readOnly.close();
      await store.close();
    },
  });
}

test("health_check says degraded, with the reason, when the store answers reads but refuses writes; unavailable when it answers nothing", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-policies-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "t.db");
  const store = readOnlyWrites(await openStore(`sqlite:${path}`), path);
  const secret = randomSecret();
  const server = await startTrackerServer({ store, secret, port: 0 });
  t.after(() => server.close());
  const client = await connectHttp(server.url, { token: await tokenFor(secret, "mahavishnu") });
  t.after(() => client.close());
  const degraded = await client.call("health_check");
  assert.equal(degraded.result.status, "degraded");
  assert.equal(degraded.result.reason, "the store answers reads but refuses writes (read-only)");
  await store.close();
  await new Promise((resolve) => setTimeout(resolve, 1100)); // past the probe's one-second reuse window
  const down = await client.call("health_check");
  assert.equal(down.result.status, "unavailable");
  assert.match(String(down.result.reason), /^the store does not answer \(/);
});

test("the server refuses tokens that live longer than its cap, however they were minted", async (t) => {
  const { server, secret } = await tracker(t, { maxTokenTtlSeconds: 86_400 });
  const now = Math.floor(Date.now() / 1000);
  const long = await new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer("mahavishnu")
    .setAudience("session-buddy")
    .setIssuedAt(now)
    .setExpirationTime(now + 2 * 86_400)
    .sign(new TextEncoder().encode(secret));
  const viaHeader = await rawPost(server.url, toolsCall("health_check", {}), { authorization: `Bearer ${long}` });
  assert.equal(viaHeader.status, 401);
  assert.match(viaHeader.text, /lifetime \(exp - iat\) is over this tracker's limit of 1 day/);
  const viaArgument = await rawPost(server.url, toolsCall("track_session_start", { ...startPayload(), token: long }));
  assert.match(viaArgument.text, /"code":"unauthenticated"/);
  const short = await tokenFor(secret, "mahavishnu");
  assert.equal(
    (await rawPost(server.url, toolsCall("health_check", {}), { authorization: `Bearer ${short}` })).status,
    200,
  );
});

test("a start stamped further ahead than --max-clock-skew is refused; an end before its start is clamped and flagged", async (t) => {
  const { client } = await tracker(t, { maxClockSkewSeconds: 60 });
  const ahead = new Date(Date.now() + 10 * 60_000).toISOString();
  const refused = SessionStartResult.parse(
    (await client.call("track_session_start", startPayload({ timestamp: ahead }))).result,
  );
  assert.equal(refused.code, "invalid_argument");
  assert.match(
    refused.error ?? "",
    /^invalid|timestamp: is \d+ s ahead of the tracker's clock, more than the 60 s allowed/,
  );
  const near = new Date(Date.now() + 30_000).toISOString();
  const started = SessionStartResult.parse(
    (await client.call("track_session_start", startPayload({ timestamp: near }))).result,
  );
  assert.equal(started.status, "tracked", "within the skew");
  const endAhead = SessionEndResult.parse(
    (
      await client.call(
        "track_session_end",
        endPayload(started.session_id as string, { timestamp: "9999-01-01T00:00:00Z" }),
      )
    ).result,
  );
  assert.equal(endAhead.code, "invalid_argument");
  const early = new Date(Date.now() - 3600_000).toISOString();
  const ended = SessionEndResult.parse(
    (await client.call("track_session_end", endPayload(started.session_id as string, { timestamp: early }))).result,
  );
  assert.equal(ended.status, "ended");
  assert.equal(ended.duration_seconds, 0);
  const session = (await client.call("get_session", { session_id: started.session_id })).result.session as Record<
    string,
    unknown
  >;
  assert.equal(session.ended_at, session.started_at);
  assert.deepEqual((session.end_metadata as Record<string, unknown>).tracker_clamped_end_timestamp, early);
});

test("component B reusing A's start event_id gets an error that reveals nothing of A; A's own replay is replayed", async (t) => {
  const { server, secret, client } = await tracker(t);
  const start = startPayload({ event_id: randomUUID() });
  const original = SessionStartResult.parse((await client.call("track_session_start", start)).result);
  const other = await connectHttp(server.url, { token: await tokenFor(secret, "oneiric") });
  t.after(() => other.close());
  const clash = await other.call("track_session_start", { ...start, component_name: "oneiric" });
  const text = JSON.stringify(clash.raw);
  assert.equal(clash.result.status, "error");
  assert.equal(clash.result.session_id, null);
  assert.equal(clash.result.code, "invalid_argument");
  assert.ok(!text.includes(String(original.session_id)) && !text.includes("mahavishnu"), text);
  const replay = SessionStartResult.parse((await client.call("track_session_start", start)).result);
  assert.deepEqual([replay.session_id, replay.replayed], [original.session_id, true]);
});

test("3000 distinct exit reasons make at most the contract's reasons plus `other` as label values", async (t) => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(provider);
  t.after(async () => {
    metrics.disable();
    await provider.shutdown();
  });
  const store = await openStore("sqlite::memory:");
  t.after(() => store.close());
  const telemetry = new ServerTelemetry();
  const tools = new TrackerTools({
    store,
    auth: { kind: "disabled" },
    leaseSeconds: 300,
    telemetry,
    log: silentLogger,
  });
  for (let i = 0; i < 3000; i++) {
    const start = await tools.call("track_session_start", startPayload(), {});
    const reason = i % 3 === 0 ? `Bearer eyJ.reason-${i}` : i % 3 === 1 ? `reason ${i}` : "exit_command";
    const end = await tools.call(
      "track_session_end",
      endPayload(String(start.result.session_id), { metadata: { exit_reason: reason } }),
      {},
    );
    assert.equal(end.result.status, "ended");
  }
  await reader.forceFlush();
  const ended = exporter
    .getMetrics()
    .flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics))
    .filter(
      (m) => m.descriptor.name === "shell_tracker_sessions_ended_total" || m.descriptor.name.includes("sessions.ended"),
    )
    .at(-1);
  assert.ok(ended, "the ended counter was exported");
  const labels = new Set(ended.dataPoints.map((p) => String(p.attributes["shell.exit.reason"])));
  assert.deepEqual([...labels].sort(), ["exit_command", "other"]);
  const total = ended.dataPoints.reduce((sum, p) => sum + Number(p.value), 0);
  assert.equal(total, 3000, "every end is counted");
  t.diagnostic(`3000 distinct exit reasons -> ${labels.size} label values: ${[...labels].join(", ")}`);
  const stored = await store.listSessions({ limit: 1 });
  assert.match(String(stored.sessions[0]?.exit_reason), /reason|exit_command/, "the text stays in the store");
});
