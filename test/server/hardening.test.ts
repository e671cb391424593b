/**
 * The tracker under hostile clients, in-process on loopback with small
 * limits: bodies without a verified token are held to a small size and a
 * share of the request slots, the rest get 503 + Retry-After while callers
 * with a token are still served; stalled bodies time out; idle connections
 * are shed past the connection cap; the log stays short; and any
 * 127.0.0.0/8 address works as a loopback bind.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { SessionStartResult } from "../../src/contract/schemas.ts";
import { type HttpOptions, startTrackerServer, type TrackerOptions } from "../../src/server/index.ts";
import { LOG_BURST } from "../../src/server/log-throttle.ts";
import { connectHttp, rawPost, startPayload, tokenFor, toolsCall } from "../helpers/mcp-client.ts";
import { randomSecret } from "../helpers/tracker.ts";
import { waitFor } from "../helpers/wait.ts";

type Options = TrackerOptions & Partial<HttpOptions>;

async function startTracker(t: { after(fn: () => Promise<void> | void): void }, options: Options = {}) {
  const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-hardening-"));
  const secret = randomSecret();
  const lines: string[] = [];
  const log = {
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  };
  const server = await startTrackerServer({ store: `sqlite:${join(dir, "t.db")}`, secret, port: 0, log, ...options });
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { server, secret, lines, token: await tokenFor(secret, "mahavishnu") };
}

/** A POST whose body stops after `sent` bytes of the `declared` ones: it holds a request slot until it times out. */
function stalledPost(url: string, declared: number, sent: number, headers: Record<string, string> = {}) {
  const { hostname, port, pathname } = new URL(url);
  const socket = connect(Number(port), hostname);
  let response = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    response += chunk;
  });
  socket.on("error", () => {});
  const head = [
    `POST ${pathname} HTTP/1.1`,
    `Host: ${hostname}:${port}`,
    "Content-Type: application/json",
    `Content-Length: ${declared}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");
  socket.write(head + " ".repeat(sent));
  const closed = new Promise<string>((resolve) => socket.once("close", () => resolve(response)));
  return { socket, closed };
}

test("a request without a verified Authorization header is held to 64 KiB; one with a header to --max-body", async (t) => {
  const { server, token } = await startTracker(t);
  const big = startPayload({ metadata: { padding: "x".repeat(100 * 1024) } });
  const anonymous = await rawPost(server.url, toolsCall("track_session_start", { ...big, token }));
  assert.equal(anonymous.status, 413);
  assert.deepEqual((anonymous.json as { error: { data: unknown } }).error.data, {
    code: "payload_too_large",
    limit: 64 * 1024,
  });
  const withHeader = await rawPost(server.url, toolsCall("track_session_start", big), {
    authorization: `Bearer ${token}`,
  });
  assert.equal(withHeader.status, 200, withHeader.text);
  assert.match(withHeader.text, /"status":"tracked"/);
});

test("past the unauthenticated share, requests without a header get 503 + Retry-After; callers with one are still served; the log stays short", async (t) => {
  const { server, token, lines } = await startTracker(t, { maxRequests: 6, maxUnauthenticatedRequests: 2 });
  const stalled = [stalledPost(server.url, 1000, 10), stalledPost(server.url, 1000, 10)];
  t.after(() => {
    for (const s of stalled) s.socket.destroy();
  });
  const probe = toolsCall("health_check", {});
  const refused = await waitFor("a 503", async () => {
    const r = await rawPost(server.url, probe);
    return r.status === 503 ? r : undefined;
  });
  assert.equal(refused.headers.get("retry-after"), "1");
  assert.equal((refused.json as { error: { data: { code: string } } }).error.data.code, "overloaded");
  for (let i = 0; i < 100; i++) assert.equal((await rawPost(server.url, probe)).status, 503);

  const client = await connectHttp(server.url, { token });
  t.after(() => client.close());
  const start = SessionStartResult.parse((await client.call("track_session_start", startPayload())).result);
  assert.equal(start.status, "tracked", "a caller with a verified header has slots of its own");

  for (const s of stalled) s.socket.destroy();
  await waitFor("slots freed", async () => ((await rawPost(server.url, probe)).status === 200 ? true : undefined));
  const refusals = lines.filter((l) => l.includes("503"));
  assert.ok(refusals.length >= 1 && refusals.length <= LOG_BURST, `${refusals.length} log lines for 100+ refusals`);
});

test("a body that stalls gets 408 after the body timeout, and its slot is freed", async (t) => {
  const { server } = await startTracker(t, { bodyTimeoutMs: 300, maxUnauthenticatedRequests: 1 });
  const stalled = stalledPost(server.url, 500, 20);
  const response = await stalled.closed;
  assert.match(response, /^HTTP\/1\.1 408 /);
  assert.match(response, /"code":"request_timeout"/);
  assert.equal((await rawPost(server.url, toolsCall("health_check", {}))).status, 200);
});

test("past --max-connections the longest-idle connections are closed, and a client that sends requests gets through", async (t) => {
  const { server, token } = await startTracker(t, { maxConnections: 20 });
  const { port } = new URL(server.url);
  const idle: Socket[] = [];
  let closed = 0;
  for (let i = 0; i < 60; i++) {
    const socket = connect(Number(port), "127.0.0.1");
    socket.on("error", () => {});
    socket.on("close", () => closed++);
    idle.push(socket);
    await new Promise((resolve) => socket.once("connect", resolve));
  }
  t.after(() => {
    for (const s of idle) s.destroy();
  });
  await waitFor("idle connections shed", async () => (closed >= 40 ? true : undefined));
  const client = await connectHttp(server.url, { token });
  t.after(() => client.close());
  const health = await client.call("health_check");
  assert.equal(health.result.status, "healthy");
  // The client's own few connections shed a few more idle ones; the newest idle connections stay open.
  assert.ok(closed <= 60 - 15, `${closed} of 60 closed: only what was over the cap`);
});

test("any 127.0.0.0/8 address works as a loopback bind and as its own Host; other names are still refused", async (t) => {
  const { server } = await startTracker(t, { host: "127.0.0.2" });
  assert.equal(server.url, `http://127.0.0.2:${server.port}/mcp`);
  const ok = await rawPost(server.url, toolsCall("health_check", {}));
  assert.equal(ok.status, 200, ok.text);
  const viaLocalhostName = await rawPost(server.url, toolsCall("health_check", {}), {
    origin: `http://127.0.0.2:${server.port}`,
  });
  assert.equal(viaLocalhostName.status, 200, "its own origin is allowed");
  const rebinding = await new Promise<number>((resolve, reject) => {
    const socket = connect(server.port, "127.0.0.2");
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => {
      text += c;
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(Number(text.split(" ")[1])));
    const body = JSON.stringify(toolsCall("health_check", {}));
    socket.write(
      `POST /mcp HTTP/1.1\r\nHost: evil.example:${server.port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  assert.equal(rebinding, 403);
});
