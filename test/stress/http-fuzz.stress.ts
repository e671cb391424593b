/**
 * The tracker's HTTP layer against generated hostile requests, sent raw
 * (node:http, so that methods, headers, chunked bodies and broken JSON go
 * out exactly as generated) to a real `shell-sessions serve` process.
 *
 * Every request must get an answer below 500 with a structured JSON-RPC body,
 * the status its category calls for (413 oversized, 415 wrong media type,
 * 400 broken JSON, 405 wrong method, 404 wrong path, 403 foreign Origin or
 * Host, 401 bad credentials); the server must stay up and the store unchanged.
 * STRESS_FUZZ_CASES sets the number of requests (default 10,000).
 */
import assert from "node:assert/strict";
import { Agent, type IncomingHttpHeaders, request } from "node:http";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { TOOL_NAMES } from "../../src/contract/tools.ts";
import { openStore } from "../../src/store/index.ts";
import type { SessionStore } from "../../src/store/types.ts";
import { type ConnectedClient, connectHttp, startPayload, tokenFor, toolsCall } from "../helpers/mcp-client.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";
import { allSessions } from "./support/fleet.ts";
import { fuzz, fuzzCases } from "./support/fuzz.ts";
import { hostileObject, hostileString, hostileValue, PROTO_KEYS } from "./support/hostile.ts";

const CASES = fuzzCases();
const BODY_LIMIT = 64 * 1024;
const COMPONENT = "fuzz";

interface RawRequest {
  category: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** Send the body in chunks without a Content-Length (the limit must hold while it streams in). */
  chunked: boolean;
  /** Status the category calls for; undefined when any answer below 500 will do. */
  expect: number | undefined;
}

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

let tracker: TrackerProcess;
let token: string;
let store: SessionStore;
let snapshot: string;
const agent = new Agent({ keepAlive: true, maxSockets: 16 });

async function storeState(): Promise<string> {
  return JSON.stringify({ events: await store.countEvents(), sessions: await allSessions(store) });
}

function send(req: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers };
    const hasBody = req.method !== "GET" && req.method !== "HEAD" && req.body.length > 0;
    // A declared length with no body would leave the server reading the next request on this connection as one.
    if (hasBody && !req.chunked) headers["content-length"] = String(req.body.length);
    const outgoing = request(
      { host: "127.0.0.1", port: tracker.port, method: req.method, path: req.path, headers, agent, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    outgoing.on("timeout", () => outgoing.destroy(new Error("no answer within 30 s")));
    outgoing.on("error", reject);
    if (!hasBody) {
      outgoing.end();
      return;
    }
    if (!req.chunked) {
      outgoing.end(req.body);
      return;
    }
    const step = 16 * 1024;
    for (let i = 0; i < req.body.length; i += step) outgoing.write(req.body.subarray(i, i + step));
    outgoing.end();
  });
}

// ---- generated requests ----

const JSON_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

function jsonBody(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value) ?? "null", "utf8");
}

/** A request the server would accept, to be broken in one way per category. */
function good(overrides: Partial<RawRequest> & Pick<RawRequest, "category">): RawRequest {
  return {
    method: "POST",
    path: "/mcp",
    headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` },
    body: jsonBody(toolsCall(TOOL_NAMES.health, {})),
    chunked: false,
    expect: undefined,
    ...overrides,
  };
}

const jsonRpcId = fc.oneof(fc.integer(), fc.string({ maxLength: 20 }), fc.constant(null), hostileValue);

/** JSON that is not a well-formed MCP request (or is one the server must refuse politely). */
const malformedRpc: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue(),
  hostileValue,
  fc.record({ jsonrpc: fc.oneof(fc.constant("1.0"), hostileValue), id: jsonRpcId, method: fc.constant("tools/list") }),
  fc.record({ jsonrpc: fc.constant("2.0"), id: jsonRpcId, method: hostileValue }),
  fc.record({
    jsonrpc: fc.constant("2.0"),
    id: hostileValue,
    method: fc.constantFrom("tools/call", "tools/list", "ping"),
  }),
  fc.record({
    jsonrpc: fc.constant("2.0"),
    id: fc.integer(),
    method: fc.constant("tools/call"),
    params: fc.oneof(hostileValue, fc.record({ name: hostileValue, arguments: hostileValue }), hostileObject),
  }),
  fc.record({
    jsonrpc: fc.constant("2.0"),
    id: fc.integer(),
    method: fc.constant("tools/call"),
    params: fc.record({
      name: fc.constantFrom(...Object.values(TOOL_NAMES)),
      arguments: fc.oneof(hostileValue, hostileObject),
      _meta: fc.oneof(hostileValue, hostileObject),
    }),
  }),
  fc.array(fc.oneof(fc.jsonValue(), hostileObject), { maxLength: 5 }),
  fc.constant([]),
  fc.constantFrom(...PROTO_KEYS).map((key) => JSON.parse(`{"${key}": {"jsonrpc": "2.0", "method": "ping", "id": 1}}`)),
);

/** Bytes that are not JSON. */
const notJson = fc
  .oneof(
    hostileString,
    fc.uint8Array({ minLength: 1, maxLength: 2_000 }).map((bytes) => Buffer.from(bytes).toString("latin1")),
    fc.jsonValue().map((v) => (JSON.stringify(v) ?? "").slice(0, -1)),
    fc.constantFrom("{", "[", '{"jsonrpc": "2.0",', "\ufeff{}", "{'a': 1}", "NaN", "undefined", "{]"),
  )
  .filter((text) => {
    try {
      JSON.parse(text);
      return false;
    } catch {
      return true;
    }
  });

const categories: fc.Arbitrary<RawRequest>[] = [
  fc.tuple(fc.integer({ min: BODY_LIMIT + 1, max: 4 * BODY_LIMIT }), fc.boolean()).map(([size, chunked]) => {
    const padding = "x".repeat(size);
    return good({
      category: "oversized body",
      body: jsonBody(toolsCall(TOOL_NAMES.start, startPayload({ component_name: COMPONENT, shell_type: padding }))),
      chunked,
      expect: 413,
    });
  }),
  notJson.map((text) => good({ category: "not JSON", body: Buffer.from(text, "latin1"), expect: 400 })),
  malformedRpc.map((value) => good({ category: "malformed JSON-RPC", body: jsonBody(value) })),
  fc
    .tuple(
      fc.oneof(
        fc.constantFrom(
          "text/plain",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          "application/jsonx",
          "application/json-seq",
          "text/json",
          "application/xml",
          "",
          "application",
          "*/*",
        ),
        hostileString
          .map((s) => s.replace(/[^\x20-\x7e]/g, ""))
          .filter((s) => !/^\s*application\/json\s*(;|$)/i.test(s)),
      ),
      fc.boolean(),
    )
    .map(([type, omit]) => {
      const headers: Record<string, string> = { accept: JSON_HEADERS.accept, authorization: `Bearer ${token}` };
      if (!omit) headers["content-type"] = type;
      return good({ category: "wrong content type", headers, expect: 415 });
    }),
  fc
    .constantFrom("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
    .map((method) => good({ category: "wrong method", method, expect: 405 })),
  fc
    .oneof(
      fc.constantFrom("/", "/mcp/", "/MCP", "/mcp/../mcp2", "/sse", "/messages", "/%00", "/.env"),
      hostileString.map((s) => `/${encodeURIComponent(s.toWellFormed())}x`),
    )
    .filter((path) => path.split("?")[0] !== "/mcp")
    .map((path) => good({ category: "wrong path", path, expect: 404 })),
  fc
    .constantFrom("http://evil.example", "https://127.0.0.1.evil.example", "null", "http://localhost:1", "file://")
    .map((origin) =>
      good({ category: "foreign Origin", headers: { ...good({ category: "" }).headers, origin }, expect: 403 }),
    ),
  fc
    .constantFrom("evil.example", "evil.example:80", "127.0.0.1.nip.io", "attacker:8678")
    .map((host) =>
      good({ category: "foreign Host", headers: { ...good({ category: "" }).headers, host }, expect: 403 }),
    ),
  fc
    .oneof(
      fc.constantFrom("Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "bearer eyJhbGciOiJub25lIn0.e30.", "Token x"),
      hostileString.map((s) => `Bearer ${s.replace(/[^\x21-\x7e]/g, "")}x`),
      fc.constant(null).map(() => `Bearer ${token.slice(0, -2)}xx`),
    )
    .map((authorization) =>
      good({ category: "bad credentials", headers: { ...JSON_HEADERS, authorization }, expect: 401 }),
    ),
  fc.integer({ min: 1_000, max: 30_000 }).map((depth) =>
    good({
      category: "deep nesting",
      body: Buffer.from(
        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"track_session_start","arguments":{"metadata":${"[".repeat(depth)}${"]".repeat(depth)}}}}`,
      ),
    }),
  ),
];

/** Oversized bodies, broken JSON and JSON-RPC, and wrong media types weigh most: they reach the most code. */
const WEIGHTS: Record<string, number> = { 0: 2, 1: 2, 2: 4, 3: 2 };
const hostileRequest = fc.oneof(...categories.map((arbitrary, i) => ({ arbitrary, weight: WEIGHTS[i] ?? 1 })));

function checkAnswer(req: RawRequest, res: RawResponse): void {
  const context = `${req.category}: ${req.method} ${req.path.slice(0, 80)} ${JSON.stringify(req.headers).slice(0, 300)} body ${req.body.toString("latin1").slice(0, 200)} → ${res.status} ${res.body.slice(0, 300)}`;
  assert.ok(res.status > 0 && res.status < 500, `server error: ${context}`);
  if (req.expect !== undefined) assert.equal(res.status, req.expect, context);
  if (req.method === "HEAD" || res.status === 202) return;
  const type = String(res.headers["content-type"] ?? "");
  assert.match(type, /^application\/json/, `the answer is not JSON: ${context}`);
  let body: unknown;
  assert.doesNotThrow(() => {
    body = JSON.parse(res.body);
  }, `the answer does not parse: ${context}`);
  const messages = Array.isArray(body) ? body : [body];
  for (const message of messages) {
    const m = message as { jsonrpc?: unknown; error?: { code?: unknown; message?: unknown }; result?: unknown };
    assert.equal(m.jsonrpc, "2.0", `not a JSON-RPC message: ${context}`);
    if (res.status >= 400) {
      assert.equal(typeof m.error?.code, "number", `no error code: ${context}`);
      assert.ok(typeof m.error?.message === "string" && m.error.message.length > 0, `no error message: ${context}`);
    } else {
      assert.ok(m.error !== undefined || m.result !== undefined, `neither result nor error: ${context}`);
    }
  }
  if (res.status === 401) assert.ok(res.headers["www-authenticate"], `401 without WWW-Authenticate: ${context}`);
  assert.ok(!res.body.includes(token), `the answer repeats the token: ${context}`);
}

describe("tracker HTTP layer under hostile requests", { timeout: 900_000 }, () => {
  let client: ConnectedClient;

  before(async () => {
    tracker = await startTracker({ lease: 3600, args: ["--max-body", String(BODY_LIMIT)] });
    token = await tokenFor(tracker.secret as string, COMPONENT);
    client = await connectHttp(tracker.url, { token });
    const { result } = await client.call(TOOL_NAMES.start, startPayload({ component_name: COMPONENT }));
    assert.equal(result.status, "tracked");
    store = await openStore(tracker.store);
    snapshot = await storeState();
  });

  after(async () => {
    await client?.close();
    await store?.close();
    agent.destroy();
    await tracker?.stop();
  });

  test(`${CASES} hostile requests each get a structured answer below 500 and change nothing`, async (t) => {
    const seen = new Map<string, number>();
    const checked = await fuzz(hostileRequest, CASES, async (req) => {
      const res = await send(req);
      checkAnswer(req, res);
      seen.set(req.category, (seen.get(req.category) ?? 0) + 1);
    });
    t.diagnostic(`requests per category: ${JSON.stringify(Object.fromEntries(seen))}`);
    assert.ok(checked >= CASES);
    assert.equal(seen.size, categories.length, "every category was exercised");
    assert.equal(await storeState(), snapshot, "the store changed");
  });

  test("the tracker still answers and still records a valid session afterwards", async () => {
    const exited = await Promise.race([
      tracker.exited.then(() => true),
      new Promise<boolean>((r) => setImmediate(() => r(false))),
    ]);
    assert.equal(exited, false, "the tracker exited");
    const health = await client.call(TOOL_NAMES.health, {});
    assert.equal(health.result.status, "healthy");
    const events = await store.countEvents();
    const { result } = await client.call(TOOL_NAMES.start, startPayload({ component_name: COMPONENT }));
    assert.equal(result.status, "tracked");
    assert.equal(await store.countEvents(), events + 1);
  });
});
