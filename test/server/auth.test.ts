/**
 * The auth matrix over real HTTP: every bad credential is refused with a
 * structured error, both as a Bearer header (HTTP 401) and as the token
 * argument (a tool result), and nothing is written.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SignJWT } from "jose";
import { mintToken } from "../../src/auth/jwt.ts";
import { SessionStartResult } from "../../src/contract/schemas.ts";
import { openStore } from "../../src/store/index.ts";
import type { SessionStore } from "../../src/store/types.ts";
import {
  connectHttp,
  connectStdio,
  endPayload,
  rawPost,
  startPayload,
  tokenFor,
  toolsCall,
} from "../helpers/mcp-client.ts";
import { randomSecret, runCli, startTracker, type TrackerProcess } from "../helpers/tracker.ts";

const COMPONENT = "mahavishnu";

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

describe("auth over HTTP", () => {
  let tracker: TrackerProcess;
  let store: SessionStore;
  let secret: string;
  /** A session of COMPONENT that bad tokens try to end. */
  let existingSession: string;

  before(async () => {
    tracker = await startTracker();
    secret = tracker.secret as string;
    store = await openStore(tracker.store);
    const client = await connectHttp(tracker.url, { token: await tokenFor(secret, COMPONENT) });
    const started = await client.call("track_session_start", startPayload({ component_name: COMPONENT }));
    existingSession = SessionStartResult.parse(started.result).session_id as string;
    await client.close();
  });
  after(async () => {
    await store?.close();
    await tracker?.stop();
  });

  async function snapshot() {
    const page = await store.listSessions({ limit: 500 });
    return { events: await store.countEvents(), sessions: page.sessions.map((s) => `${s.session_id}:${s.status}`) };
  }

  /** Refused as a header (401 + WWW-Authenticate) and as an argument (structured result); nothing written. */
  async function assertRefused(token: string, reason: string) {
    const before = await snapshot();

    const raw = await rawPost(tracker.url, toolsCall("track_session_start", startPayload()), {
      authorization: `Bearer ${token}`,
    });
    assert.equal(raw.status, 401, raw.text);
    const challenge = raw.headers.get("www-authenticate") ?? "";
    assert.match(challenge, /^Bearer error="invalid_token", error_description="[^"]+"$/);
    const body = raw.json as { jsonrpc: string; error: { message: string; data: { code: string; reason: string } } };
    assert.equal(body.jsonrpc, "2.0");
    assert.equal(body.error.data.code, "unauthenticated");
    assert.equal(body.error.data.reason, reason);
    assert.ok(!raw.text.includes(token) && !challenge.includes(token), "the token is never echoed");

    // The SDK's client sees the same refusal when it connects with that header.
    await assert.rejects(connectHttp(tracker.url, { token }), (error: Error & { code?: number }) => {
      assert.equal(error.code, 401);
      return true;
    });

    const client = await connectHttp(tracker.url);
    try {
      const start = await client.call("track_session_start", startPayload({ token }));
      assert.equal(start.raw.isError, true);
      const result = SessionStartResult.parse(start.result);
      assert.equal(result.status, "error");
      assert.equal(result.session_id, null);
      assert.equal(result.code, "unauthenticated");
      assert.match(result.error ?? "", new RegExp(`token: .*\\(${reason}\\)`));
      assert.equal(result.issues?.[0]?.field, "token");
      assert.ok(!JSON.stringify(start.raw).includes(token), "the token is never echoed");

      const end = await client.call("track_session_end", endPayload(existingSession, { token }));
      assert.equal(end.result.status, "error");
      assert.equal(end.result.code, "unauthenticated");
    } finally {
      await client.close();
    }
    assert.deepEqual(await snapshot(), before, "nothing was written");
  }

  test("no token at all: the tool answers unauthenticated (the transport allows no header)", async (t) => {
    const before = await snapshot();
    const client = await connectHttp(tracker.url);
    t.after(() => client.close());
    const start = await client.call("track_session_start", startPayload());
    assert.equal(start.raw.isError, true);
    assert.equal(start.result.status, "error");
    assert.equal(start.result.session_id, null);
    assert.equal(start.result.code, "unauthenticated");
    assert.match(String(start.result.error), /token: no token was given.*shell-sessions token --component/);
    const end = await client.call("track_session_end", endPayload(existingSession));
    assert.equal(end.result.code, "unauthenticated");
    const list = await client.call("list_sessions", {});
    assert.equal(list.result.code, "unauthenticated");
    assert.deepEqual(list.result.sessions, []);
    assert.deepEqual(await snapshot(), before);
  });

  test("a malformed token", async () => {
    await assertRefused("not-a-jwt", "malformed");
  });

  test("a token signed with another secret", async () => {
    await assertRefused(await mintToken({ secret: randomSecret(), component: COMPONENT }), "bad_signature");
  });

  test('a token with alg "none"', async () => {
    const now = nowSeconds();
    const unsigned = `${base64url({ alg: "none", typ: "JWT" })}.${base64url({
      iss: COMPONENT,
      aud: "session-buddy",
      iat: now,
      exp: now + 600,
    })}.`;
    await assertRefused(unsigned, "algorithm");
  });

  test("an expired token", async () => {
    const expired = await mintToken({ secret, component: COMPONENT, now: nowSeconds() - 7200, ttlSeconds: 600 });
    await assertRefused(expired, "expired");
  });

  test("a token that is not yet valid (iat or nbf in the future)", async () => {
    await assertRefused(await mintToken({ secret, component: COMPONENT, now: nowSeconds() + 3600 }), "not_yet_valid");
    const now = nowSeconds();
    const notBefore = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(COMPONENT)
      .setAudience("session-buddy")
      .setIssuedAt(now)
      .setNotBefore(now + 3600)
      .setExpirationTime(now + 7200)
      .sign(new TextEncoder().encode(secret));
    await assertRefused(notBefore, "not_yet_valid");
  });

  test("a token for another audience", async () => {
    const now = nowSeconds();
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(COMPONENT)
      .setAudience("some-other-service")
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(new TextEncoder().encode(secret));
    await assertRefused(token, "audience");
  });

  test("a token with a wrong issuer, and a start for a component other than the token's", async (t) => {
    const now = nowSeconds();
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("not a component!")
      .setAudience("session-buddy")
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(new TextEncoder().encode(secret));
    await assertRefused(token, "issuer");

    const before = await snapshot();
    const client = await connectHttp(tracker.url, { token: await tokenFor(secret, "oneiric") });
    t.after(() => client.close());
    const start = await client.call("track_session_start", startPayload({ component_name: COMPONENT }));
    assert.equal(start.result.status, "error");
    assert.equal(start.result.session_id, null);
    assert.equal(start.result.code, "permission_denied");
    assert.match(String(start.result.error), /component_name: this token is for component "oneiric"/);
    assert.deepEqual(await snapshot(), before);
  });

  test("a token of component A used on a session of component B", async (t) => {
    const before = await snapshot();
    const other = await connectHttp(tracker.url, { token: await tokenFor(secret, "oneiric") });
    t.after(() => other.close());
    const end = await other.call("track_session_end", endPayload(existingSession));
    assert.equal(end.raw.isError, true);
    assert.equal(end.result.status, "error");
    assert.equal(end.result.code, "permission_denied");
    assert.match(String(end.result.error), /session_id: .*"oneiric".*"mahavishnu"/);
    const beat = await other.call("heartbeat_session", {
      session_id: existingSession,
      timestamp: new Date().toISOString(),
    });
    assert.equal(beat.result.code, "permission_denied");
    const get = await other.call("get_session", { session_id: existingSession });
    assert.equal(get.result.code, "permission_denied");
    assert.equal(get.result.session, null);
    const list = await other.call("list_sessions", { component_name: COMPONENT });
    assert.equal(list.result.code, "permission_denied");
    assert.deepEqual(await snapshot(), before, "nothing was written");
    assert.equal((await store.getSession(existingSession))?.status, "active");
  });

  test("a token without the scope a tool needs", async (t) => {
    const before = await snapshot();
    const readOnly = await connectHttp(tracker.url, { token: await tokenFor(secret, COMPONENT, ["sessions:read"]) });
    t.after(() => readOnly.close());
    const start = await readOnly.call("track_session_start", startPayload());
    assert.equal(start.result.code, "permission_denied");
    assert.match(String(start.result.error), /sessions:write/);
    const get = await readOnly.call("get_session", { session_id: existingSession });
    assert.equal(get.result.status, "ok");
    assert.deepEqual(await snapshot(), before);
  });

  test("a foreign Origin is refused with 403 before anything runs", async () => {
    const before = await snapshot();
    const token = await tokenFor(secret, COMPONENT);
    const refused = await rawPost(tracker.url, toolsCall("track_session_start", startPayload({ token })), {
      origin: "http://evil.example",
    });
    assert.equal(refused.status, 403);
    const body = refused.json as { error: { message: string; data: { code: string } } };
    assert.equal(body.error.data.code, "forbidden_origin");
    assert.match(body.error.message, /Origin "http:\/\/evil\.example" is not allowed.*--allow-origin/);
    // The server's own loopback origin is fine.
    const own = await rawPost(tracker.url, toolsCall("health_check", {}), { origin: new URL(tracker.url).origin });
    assert.equal(own.status, 200, own.text);
    assert.deepEqual(await snapshot(), before);
  });

  test("a secret shorter than 32 characters is refused at start-up", async () => {
    const short = "too-short-secret-1234";
    const result = await runCli(["serve", "--port", "0", "--store", "sqlite::memory:"], {
      SESSION_BUDDY_SECRET: short,
      SHELL_SESSIONS_STATE_DIR: tracker.stateDir,
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /SESSION_BUDDY_SECRET is 21 characters long; it must be at least 32/);
    assert.doesNotMatch(result.stderr, /listening on/);
    assert.ok(!result.stderr.includes(short), "the secret is never echoed");
  });
});

describe("auth over stdio", () => {
  test("an invalid SESSION_BUDDY_TOKEN stops the server at start, saying why", async (t) => {
    const tracker = await startTracker();
    t.after(() => tracker.stop());
    const badToken = await mintToken({ secret: randomSecret(), component: COMPONENT });
    await assert.rejects(
      connectStdio({
        store: tracker.store,
        stateDir: tracker.stateDir,
        secret: tracker.secret as string,
        environmentToken: badToken,
      }),
    );
    const direct = await runCli(["serve", "--stdio", "--store", tracker.store], {
      SHELL_SESSIONS_STATE_DIR: tracker.stateDir,
      SESSION_BUDDY_SECRET: tracker.secret,
      SESSION_BUDDY_TOKEN: badToken,
    });
    assert.equal(direct.code, 1);
    assert.match(direct.stderr, /SESSION_BUDDY_TOKEN: token signature is invalid/);
    assert.ok(!direct.stderr.includes(badToken));
  });
});
