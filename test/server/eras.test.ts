/**
 * Both MCP protocol eras on the same tracker and the same endpoints: a
 * 2026-07-28 client (the v2 SDK's client pinned to the stateless revision)
 * and a 2025-11-25 client (the v1 SDK's, with the initialize handshake) each
 * record a session start and end, over Streamable HTTP and over stdio; the
 * edge checks, auth, structured errors and trace context behave the same in
 * both eras.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { SessionEndResult, SessionStartResult } from "../../src/contract/schemas.ts";
import {
  type ClientEra,
  type ConnectedClient,
  connectHttp,
  connectStdio,
  endPayload,
  MODERN_REVISION,
  rawPost,
  startPayload,
  tokenFor,
} from "../helpers/mcp-client.ts";
import { type OtlpReceiver, startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";

const LEGACY_REVISION = "2025-11-25";
const ERAS: readonly ClientEra[] = ["modern", "legacy"];
const EXPECTED_REVISION: Record<ClientEra, string> = { modern: MODERN_REVISION, legacy: LEGACY_REVISION };

/** The `_meta` envelope and routing headers a 2026-07-28 request carries. */
function modernRequest(method: string, params: Record<string, unknown> = {}, name?: string) {
  const body = {
    jsonrpc: "2.0",
    id: 7,
    method,
    params: {
      ...params,
      _meta: {
        "io.modelcontextprotocol/protocolVersion": MODERN_REVISION,
        "io.modelcontextprotocol/clientCapabilities": {},
        ...((params._meta as Record<string, unknown> | undefined) ?? {}),
      },
    },
  };
  const headers: Record<string, string> = { "mcp-protocol-version": MODERN_REVISION, "mcp-method": method };
  if (name !== undefined) headers["mcp-name"] = name;
  return { body, headers };
}

async function recordSession(client: ConnectedClient, component = "mahavishnu") {
  const start = await client.call("track_session_start", startPayload({ component_name: component }));
  const started = SessionStartResult.parse(start.result);
  assert.equal(started.status, "tracked");
  const end = await client.call("track_session_end", endPayload(started.session_id as string));
  const ended = SessionEndResult.parse(end.result);
  assert.equal(ended.status, "ended");
  return started.session_id as string;
}

describe("both protocol eras on one tracker", () => {
  let tracker: TrackerProcess;
  let receiver: OtlpReceiver;
  let token: string;

  before(async () => {
    receiver = await startOtlpReceiver();
    tracker = await startTracker({ env: receiver.env() });
    token = await tokenFor(tracker.secret as string, "mahavishnu");
  });
  after(async () => {
    await tracker?.stop();
    await receiver?.close();
  });

  for (const era of ERAS) {
    test(`a ${EXPECTED_REVISION[era]} client records a session start and end over HTTP`, async (t) => {
      const client = await connectHttp(tracker.url, { token, era });
      t.after(() => client.close());
      assert.equal(client.protocolVersion, EXPECTED_REVISION[era]);
      const sessionId = await recordSession(client);
      const got = await client.call("get_session", { session_id: sessionId });
      assert.equal((got.result.session as { status: string }).status, "ended");
    });
  }

  test("the modern era answers server/discover with the stateless revision and the tools capability", async () => {
    const { body, headers } = modernRequest("server/discover");
    const answer = await rawPost(tracker.url, body, { ...headers, authorization: `Bearer ${token}` });
    assert.equal(answer.status, 200, answer.text);
    const result = (answer.json as { result: Record<string, unknown> }).result;
    assert.ok((result.supportedVersions as string[]).includes(MODERN_REVISION));
    assert.ok((result.capabilities as Record<string, unknown>).tools);
    assert.equal(result.resultType, "complete");
  });

  for (const version of ["2025-11-25", "2025-06-18", "2025-03-26"]) {
    test(`the handshake era still settles ${version}`, async () => {
      const initialize = {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: version, capabilities: {}, clientInfo: { name: "raw", version: "0" } },
      };
      const answer = await rawPost(tracker.url, initialize, { authorization: `Bearer ${token}` });
      assert.equal(answer.status, 200, answer.text);
      assert.equal((answer.json as { result: { protocolVersion: string } }).result.protocolVersion, version);
      assert.equal(answer.headers.get("mcp-session-id"), null, "stateless: no MCP session is issued");
    });
  }

  test("a modern request whose routing headers disagree with its body is refused, and changes nothing", async () => {
    const payload = startPayload();
    const { body, headers } = modernRequest(
      "tools/call",
      { name: "track_session_start", arguments: payload },
      "track_session_start",
    );
    const answer = await rawPost(tracker.url, body, {
      ...headers,
      "mcp-name": "health_check",
      authorization: `Bearer ${token}`,
    });
    assert.equal(answer.status, 400, answer.text);
    assert.equal((answer.json as { error: { code: number } }).error.code, -32020);
    const list = await connectHttp(tracker.url, { token, era: "modern" });
    try {
      const listed = await list.call("list_sessions", {});
      const ids = (listed.result.sessions as Array<{ start_event_id: string }>).map((s) => s.start_event_id);
      assert.ok(ids.length > 0 && ids.every((id) => typeof id === "string"), "the listing names start events");
      assert.ok(!ids.includes(payload.event_id as string));
    } finally {
      await list.close();
    }
  });

  test("auth, Origin and body limits refuse a modern request exactly as a handshake one", async () => {
    const { body, headers } = modernRequest("tools/list");
    const noToken = await rawPost(tracker.url, body, { ...headers, authorization: "Bearer not.a.jwt" });
    assert.equal(noToken.status, 401);
    assert.equal((noToken.json as { error: { data: { code: string } } }).error.data.code, "unauthenticated");
    const foreign = await rawPost(tracker.url, body, { ...headers, origin: "http://evil.example" });
    assert.equal(foreign.status, 403);
    assert.equal((foreign.json as { error: { data: { code: string } } }).error.data.code, "forbidden_origin");
    // Over the 64 KiB a request without a verified header may send, yet small enough to be in the socket's
    // buffers before the refusal closes the connection (a larger one can make fetch fail with EPIPE).
    const huge = modernRequest("tools/call", { name: "health_check", arguments: { pad: "x".repeat(100_000) } });
    const tooLarge = await rawPost(tracker.url, huge.body, { ...huge.headers, "mcp-name": "health_check" });
    assert.equal(tooLarge.status, 413);
  });

  for (const era of ERAS) {
    test(`invalid arguments get the contract's structured error in the ${era} era`, async (t) => {
      const client = await connectHttp(tracker.url, { token, era });
      t.after(() => client.close());
      const answer = await client.call("track_session_start", startPayload({ pid: -1 }));
      assert.equal(answer.raw.isError, true);
      assert.equal(answer.result.status, "error");
      assert.equal(answer.result.code, "invalid_argument");
      const issues = answer.result.issues as Array<{ field: string }>;
      assert.ok(
        issues.some((issue) => issue.field === "pid"),
        JSON.stringify(issues),
      );
    });
  }

  for (const era of ERAS) {
    test(`the ${era} era's server span joins the caller's trace from _meta and names the revision`, async (t) => {
      const client = await connectHttp(tracker.url, { token, era });
      t.after(() => client.close());
      const traceId = randomBytes(16).toString("hex");
      const spanId = randomBytes(8).toString("hex");
      await client.call("track_session_start", startPayload(), { traceparent: `00-${traceId}-${spanId}-01` });
      const span = await receiver.waitForSpan(
        (s) => s.traceId === traceId && s.name === "tools/call track_session_start",
      );
      assert.equal(span.parentSpanId, spanId);
      assert.equal(span.attributes["mcp.protocol.version"], EXPECTED_REVISION[era]);
    });
  }
});

describe("both protocol eras over stdio", () => {
  let tracker: TrackerProcess;

  before(async () => {
    // Only for its state dir and secret: each client spawns its own stdio tracker on one SQLite file.
    tracker = await startTracker();
  });
  after(async () => {
    await tracker?.stop();
  });

  for (const era of ERAS) {
    test(`a ${EXPECTED_REVISION[era]} client records a session start and end over stdio`, async (t) => {
      const stateDir = join(tracker.stateDir, `stdio-${era}`);
      t.after(() => rmSync(stateDir, { recursive: true, force: true }));
      const client = await connectStdio({
        store: tracker.store,
        stateDir,
        secret: tracker.secret as string,
        environmentToken: await tokenFor(tracker.secret as string, "mahavishnu"),
        era,
      });
      t.after(() => client.close());
      assert.equal(client.protocolVersion, EXPECTED_REVISION[era]);
      const sessionId = await recordSession(client);
      // The HTTP tracker shares the store: the stdio era's session is there.
      const reader = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
      try {
        const got = await reader.call("get_session", { session_id: sessionId });
        assert.equal((got.result.session as { status: string }).status, "ended");
      } finally {
        await reader.close();
      }
    });
  }
});
