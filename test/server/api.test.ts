/**
 * The programmatic entry point (`otel-shell-sessions/server`) in-process:
 * start on a free port with a store of the caller's, serve real MCP clients,
 * answer a failing store with structured errors rather than crashes, close.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { GetSessionResult, SessionStartResult } from "../../src/contract/schemas.ts";
import {
  DEFAULT_HOST,
  DEFAULT_LEASE_SECONDS,
  DEFAULT_PATH,
  OptionError,
  startStdioTracker,
  startTrackerServer,
} from "../../src/server/index.ts";
import { openStore } from "../../src/store/index.ts";
import { connectHttp, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { randomSecret } from "../helpers/tracker.ts";

test("a bad option given in code is an OptionError naming it, and nothing is opened", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-api-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = `sqlite:${join(dir, "tracker.db")}`;
  const secret = randomSecret();
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ port: 70_000 }, "port", /option port must be a whole number from 0 to 65535/],
    [{ port: 0, path: "mcp" }, "path", /option path must be a path starting with "\/"/],
    [{ port: 0, maxRequests: 0 }, "maxRequests", /option maxRequests must be a whole number, at least 1/],
    [{ port: 0, leaseSeconds: -5 }, "leaseSeconds", /option leaseSeconds must be a number of seconds greater than 0/],
    [{ port: 0, allowedOrigins: "http://x" }, "allowedOrigins", /option allowedOrigins must be an array of origins/],
  ];
  for (const [bad, field, message] of cases) {
    await assert.rejects(startTrackerServer({ store, secret, ...bad }), (error: unknown) => {
      assert.ok(error instanceof OptionError, String(error));
      assert.equal(error.source, field);
      assert.match(error.message, message);
      return true;
    });
  }
  await assert.rejects(startStdioTracker({ store, secret, storeTimeoutMs: 0.5 }), /option storeTimeoutMs must be/);
  assert.equal(existsSync(join(dir, "tracker.db")), false, "no store was opened");
});

test("startTrackerServer serves MCP on a free loopback port and closes cleanly", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-api-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = randomSecret();
  const tracker = await startTrackerServer({ store: `sqlite:${join(dir, "tracker.db")}`, secret, port: 0 });
  let closed = false;
  t.after(async () => {
    if (!closed) await tracker.close();
  });
  assert.equal(tracker.host, DEFAULT_HOST);
  assert.equal(tracker.url, `http://127.0.0.1:${tracker.port}${DEFAULT_PATH}`);
  assert.ok(tracker.port > 0);

  const client = await connectHttp(tracker.url, { token: await tokenFor(secret, "mahavishnu") });
  const start = SessionStartResult.parse((await client.call("track_session_start", startPayload())).result);
  assert.equal(start.status, "tracked");
  const health = await client.call("health_check");
  assert.equal(health.result.lease_seconds, DEFAULT_LEASE_SECONDS);
  assert.equal(health.result.active_sessions, 1);
  await client.close();

  await tracker.close();
  closed = true;
  await assert.rejects(fetch(tracker.url, { method: "POST" }), "nothing listens after close()");
  // It closed the store it opened; the data is on disk.
  const store = await openStore(`sqlite:${join(dir, "tracker.db")}`);
  t.after(() => store.close());
  assert.equal((await store.getSession(start.session_id as string))?.status, "active");
});

test("a store that fails is answered with structured unavailable errors, and the server keeps serving", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-api-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await openStore(`sqlite:${join(dir, "tracker.db")}`);
  const secret = randomSecret();
  const tracker = await startTrackerServer({ store, secret, port: 0 });
  t.after(() => tracker.close());
  const client = await connectHttp(tracker.url, { token: await tokenFor(secret, "mahavishnu") });
  t.after(() => client.close());

  // The caller owns this store; closing it under the server makes every query fail.
  await store.close();
  const health = await client.call("health_check");
  assert.equal(health.result.status, "unavailable");
  assert.match(String(health.result.reason), /^the store does not answer \(/);

  const start = await client.call("track_session_start", startPayload());
  assert.equal(start.raw.isError, true);
  const result = SessionStartResult.parse(start.result);
  assert.equal(result.status, "error");
  assert.equal(result.session_id, null);
  assert.equal(result.code, "unavailable");
  assert.match(result.error ?? "", /not recorded/);

  const get = GetSessionResult.parse((await client.call("get_session", { session_id: "sess_x" })).result);
  assert.equal(get.status, "error");
  assert.equal(get.session, null);
});

test("close() stops accepting but lets a request in flight finish", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-api-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const real = await openStore(`sqlite:${join(dir, "tracker.db")}`);
  t.after(() => real.close());
  // The real store, with starts held until the test lets them through: a request deterministically in flight.
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let arrived: () => void = () => {};
  const startArrived = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  const heldStart: typeof real.recordStart = async (...args) => {
    arrived();
    await released;
    return real.recordStart(...args);
  };
  const store = new Proxy(real, {
    get(target, property) {
      if (property === "recordStart") return heldStart;
      const value: unknown = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const secret = randomSecret();
  const tracker = await startTrackerServer({ store, secret, port: 0 });
  const client = await connectHttp(tracker.url, { token: await tokenFor(secret, "mahavishnu") });
  t.after(() => client.close());

  const inFlight = client.call("track_session_start", startPayload());
  await startArrived;
  const closing = tracker.close();
  await assert.rejects(fetch(tracker.url, { method: "POST" }), "no new connection is accepted while stopping");
  release();
  const result = SessionStartResult.parse((await inFlight).result);
  assert.equal(result.status, "tracked");
  await closing;
  assert.equal((await real.getSession(result.session_id as string))?.status, "active");
});
