/**
 * The HTTP front of the tracker: what it refuses before the MCP layer runs
 * (Host, Origin, media type, body size, methods), the generated secret, the
 * no-auth opt-out, and a clean stop.
 */
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { verifyToken } from "../../src/auth/jwt.ts";
import { SessionStartResult } from "../../src/contract/schemas.ts";
import { openStore } from "../../src/store/index.ts";
import { connectHttp, rawPost, startPayload, tokenFor, toolsCall } from "../helpers/mcp-client.ts";
import { runCli, startTracker, type TrackerProcess } from "../helpers/tracker.ts";

interface PlainResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** An HTTP request with full control of headers and of how the body is sent (fetch sets Host itself). */
function plainRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; chunks?: Buffer[] },
): Promise<PlainResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? "POST", headers: options.headers ?? {} }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    // The server may answer and close before the whole body is written: the answer is what counts.
    req.on("error", (error) => reject(error));
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end();
  });
}

describe("HTTP front", () => {
  let tracker: TrackerProcess;

  before(async () => {
    tracker = await startTracker({ args: ["--max-body", "64k", "--allow-origin", "http://localhost:3000"] });
  });
  after(async () => {
    await tracker?.stop();
  });

  const jsonHeaders = { "content-type": "application/json", accept: "application/json, text/event-stream" };

  test("a body over the limit is refused with 413, whether declared or streamed", async () => {
    const big = Buffer.alloc(200 * 1024, "x");
    const declared = await plainRequest(tracker.url, {
      headers: { ...jsonHeaders, "content-length": String(big.length) },
      chunks: [big],
    });
    assert.equal(declared.status, 413);
    assert.match(declared.body, /payload too large: the request body limit is 65536 bytes/);

    // Chunked: no length announced, so the server counts as it reads.
    const streamed = await plainRequest(tracker.url, {
      headers: { ...jsonHeaders, "transfer-encoding": "chunked" },
      chunks: Array.from({ length: 20 }, () => Buffer.alloc(10 * 1024, " ")),
    });
    assert.equal(streamed.status, 413);
    assert.equal(
      (JSON.parse(streamed.body) as { error: { data: { code: string } } }).error.data.code,
      "payload_too_large",
    );

    // A normal request still works afterwards.
    const health = await rawPost(tracker.url, toolsCall("health_check", {}));
    assert.equal(health.status, 200);
  });

  test("a body that is not JSON gets 415", async () => {
    const response = await rawPost(tracker.url, "event_id=1", { "content-type": "application/x-www-form-urlencoded" });
    assert.equal(response.status, 415);
    assert.match(response.text, /Content-Type must be application\/json/);
  });

  test("invalid JSON gets a JSON-RPC parse error", async () => {
    const response = await rawPost(tracker.url, "{not json");
    assert.equal(response.status, 400);
    assert.equal((response.json as { error: { code: number } }).error.code, -32700);
  });

  test("GET and DELETE get 405: the endpoint is stateless and takes POST only", async () => {
    for (const method of ["GET", "DELETE"]) {
      const response = await plainRequest(tracker.url, { method, headers: { accept: "text/event-stream" } });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.allow, "POST");
    }
  });

  test("a Host header that is not a loopback name of this server gets 403 (DNS rebinding)", async () => {
    const response = await plainRequest(tracker.url, {
      headers: { ...jsonHeaders, host: `rebound.example:${tracker.port}` },
      chunks: [Buffer.from(JSON.stringify(toolsCall("health_check", {})))],
    });
    assert.equal(response.status, 403);
    const message = (JSON.parse(response.body) as { error: { message: string } }).error.message;
    assert.match(message, /Host header "rebound\.example:\d+" is not a name of this server/);
    const viaLocalhost = await plainRequest(tracker.url, {
      headers: { ...jsonHeaders, host: `localhost:${tracker.port}` },
      chunks: [Buffer.from(JSON.stringify(toolsCall("health_check", {})))],
    });
    assert.equal(viaLocalhost.status, 200, viaLocalhost.body);
  });

  test("an origin given with --allow-origin is accepted; others are not", async () => {
    const allowed = await rawPost(tracker.url, toolsCall("health_check", {}), { origin: "http://localhost:3000" });
    assert.equal(allowed.status, 200, allowed.text);
    const refused = await rawPost(tracker.url, toolsCall("health_check", {}), { origin: "http://localhost:3001" });
    assert.equal(refused.status, 403);
  });

  test("a non-Bearer Authorization header gets 401 with a challenge", async () => {
    const response = await rawPost(tracker.url, toolsCall("health_check", {}), { authorization: "Basic dXNlcjpwYXNz" });
    assert.equal(response.status, 401);
    assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer error="invalid_token"/);
    assert.equal((response.json as { error: { data: { reason: string } } }).error.data.reason, "malformed");
  });

  test("tools/list advertises the contract's input and output schemas", async (t) => {
    const client = await connectHttp(tracker.url);
    t.after(() => client.close());
    const { tools } = await client.client.listTools();
    const start = tools.find((tool) => tool.name === "track_session_start");
    assert.ok(start);
    assert.deepEqual(
      [...(start.inputSchema.required ?? [])].sort(),
      [
        "component_name",
        "environment",
        "event_id",
        "event_type",
        "event_version",
        "hostname",
        "pid",
        "shell_type",
        "timestamp",
        "user",
      ].sort(),
    );
    assert.ok(start.outputSchema);
    assert.equal(tools.find((tool) => tool.name === "health_check")?.outputSchema, undefined);
  });

  test("an unknown tool gets JSON-RPC error -32602; bad arguments to the added tools get structured errors naming the field", async (t) => {
    const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
    t.after(() => client.close());
    await assert.rejects(client.call("track_session_pause", {}), (error: unknown) => {
      assert.ok(error instanceof McpError, String(error));
      assert.equal(error.code, -32602);
      assert.match(error.message, /Unknown tool: track_session_pause; this server has: track_session_start, /);
      return true;
    });
    const raw = await rawPost(tracker.url, toolsCall("no_such_tool", {}), {
      authorization: `Bearer ${await tokenFor(tracker.secret as string, "mahavishnu")}`,
    });
    assert.equal(raw.status, 200);
    assert.equal((raw.json as { error?: { code?: number } }).error?.code, -32602, raw.text);

    for (const [tool, args, field] of [
      ["list_sessions", { limit: 0 }, "limit"],
      ["list_sessions", { status: "sleeping" }, "status"],
      ["list_sessions", { started_after: "last week" }, "started_after"],
      ["list_sessions", { cursor: "%%%not-a-cursor" }, "cursor"],
      ["get_session", {}, "session_id"],
      ["heartbeat_session", { session_id: "sess_x" }, "timestamp"],
      ["heartbeat_session", { session_id: "sess_x", timestamp: "now", event_type: "ping" }, "timestamp"],
    ] as const) {
      const r = await client.call(tool, args);
      assert.equal(r.raw.isError, true, `${tool} ${JSON.stringify(args)}`);
      assert.equal(r.result.status, "error");
      assert.equal(r.result.code, "invalid_argument");
      assert.match(String(r.result.error), new RegExp(`${field}: `), String(r.result.error));
    }
  });
});

describe("serve start-up", () => {
  test("without a configured secret, one is generated into the state dir (0600) and the log says where", async (t) => {
    const tracker = await startTracker({ secret: null });
    t.after(() => tracker.stop());
    const path = join(tracker.stateDir, "secret");
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.match(tracker.log, new RegExp(`generated into ${path.replace(/[/.]/g, "\\$&")} \\(mode 0600`));
    // The same user's tools find it: a token minted from it is accepted.
    const minted = await runCli(["token", "--component", "oneiric"], { SHELL_SESSIONS_STATE_DIR: tracker.stateDir });
    assert.equal(minted.code, 0, minted.stderr);
    const token = minted.stdout.trim();
    const client = await connectHttp(tracker.url, { token });
    t.after(() => client.close());
    const start = await client.call("track_session_start", startPayload({ component_name: "oneiric" }));
    assert.equal(SessionStartResult.parse(start.result).status, "tracked");
    // The log never shows the secret.
    const { readFileSync } = await import("node:fs");
    const secret = readFileSync(path, "utf8").trim();
    assert.ok(!tracker.log.includes(secret));
    await verifyToken(token, secret);
  });

  test("--insecure-no-auth accepts calls without a token and warns loudly", async (t) => {
    const tracker = await startTracker({ secret: null, args: ["--insecure-no-auth"] });
    t.after(() => tracker.stop());
    assert.match(tracker.log, /WARNING: authentication is DISABLED \(--insecure-no-auth\)/);
    const client = await connectHttp(tracker.url);
    t.after(() => client.close());
    const start = await client.call("track_session_start", startPayload());
    assert.equal(SessionStartResult.parse(start.result).status, "tracked");
  });

  test("--insecure-no-auth on a non-loopback address is refused unless explicitly allowed", async () => {
    const result = await runCli(["serve", "--host", "0.0.0.0", "--port", "0", "--insecure-no-auth"], {
      SHELL_SESSIONS_STATE_DIR: "/nonexistent-state-dir-never-created",
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /refusing to serve without authentication on the non-loopback address 0\.0\.0\.0/);
  });

  test("bad flags are usage errors naming the flag", async () => {
    for (const [args, pattern] of [
      [["--port", "http"], /--port must be a whole number/],
      [["--lease=-5"], /--lease must be a number of seconds/],
      [["--allow-origin", "localhost:3000/x"], /--allow-origin takes an origin/],
      [["--max-body", "lots"], /--max-body must be a size/],
      [["--frobnicate"], /Unknown option '--frobnicate'/],
    ] as const) {
      const result = await runCli(["serve", ...args]);
      assert.equal(result.code, 2, args.join(" "));
      assert.match(result.stderr, pattern);
      assert.match(result.stderr, /Usage: shell-sessions serve/);
    }
  });

  test("SIGTERM and SIGINT stop the server cleanly with exit code 0, keeping what was recorded", async (t) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const tracker = await startTracker();
      t.after(() => tracker.stop());
      const token = await tokenFor(tracker.secret as string, "mahavishnu");
      const client = await connectHttp(tracker.url, { token });
      const start = SessionStartResult.parse((await client.call("track_session_start", startPayload())).result);
      await client.close();
      const status = await tracker.kill(signal);
      assert.deepEqual(status, { code: 0, signal: null }, tracker.log);
      assert.match(tracker.log, new RegExp(`stopping \\(${signal}\\)[\\s\\S]*stopped`));
      const store = await openStore(tracker.store);
      t.after(() => store.close());
      assert.equal((await store.getSession(start.session_id as string))?.status, "active");
    }
  });

  test("restart() brings the tracker back on the same URL with the same store", async (t) => {
    const tracker = await startTracker();
    t.after(() => tracker.stop());
    const token = await tokenFor(tracker.secret as string, "mahavishnu");
    const first = await connectHttp(tracker.url, { token });
    const start = SessionStartResult.parse((await first.call("track_session_start", startPayload())).result);
    await first.close();
    const { url, pid } = tracker;
    await tracker.restart();
    assert.equal(tracker.url, url);
    assert.notEqual(tracker.pid, pid);
    const second = await connectHttp(tracker.url, { token });
    t.after(() => second.close());
    const got = await second.call("get_session", { session_id: start.session_id });
    assert.equal(got.result.status, "ok");
  });
});
