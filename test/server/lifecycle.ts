/**
 * One session's whole life through a real MCP client, whatever the transport
 * and store: start, heartbeat, get, list, end, end again, and the answers for
 * unknown ids. Shared by the SQLite and PostgreSQL suites.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  GetSessionResult,
  HeartbeatResult,
  ListSessionsResult,
  SessionEndResult,
  SessionStartResult,
} from "../../src/contract/schemas.ts";
import { type ConnectedClient, endPayload, startPayload } from "../helpers/mcp-client.ts";

export interface LifecycleOptions {
  /** Sent as the token argument; omit when the transport carries the credential. */
  token?: string;
  component?: string;
}

export async function exerciseLifecycle(client: ConnectedClient, options: LifecycleOptions = {}): Promise<string> {
  const component = options.component ?? "mahavishnu";
  const auth = options.token ? { token: options.token } : {};
  const { tools } = await client.client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), [
    "get_session",
    "health_check",
    "heartbeat_session",
    "list_sessions",
    "track_session_end",
    "track_session_events",
    "track_session_start",
  ]);

  const startedAt = new Date(Date.now() - 120_000);
  const hostname = `host-${randomUUID().slice(0, 8)}`;
  const start = await client.call(
    "track_session_start",
    startPayload({ component_name: component, hostname, timestamp: startedAt.toISOString(), ...auth }),
  );
  const started = SessionStartResult.parse(start.result);
  assert.equal(started.status, "tracked", JSON.stringify(start.result));
  assert.equal(start.raw.isError, undefined);
  const sessionId = started.session_id as string;
  assert.match(sessionId, /^sess_[\w-]{20,}$/);

  const beat = await client.call("heartbeat_session", {
    session_id: sessionId,
    timestamp: new Date().toISOString(),
    ...auth,
  });
  const alive = HeartbeatResult.parse(beat.result);
  assert.equal(alive.status, "alive");
  assert.ok(alive.lease_expires_at && Date.parse(alive.lease_expires_at) > Date.now());

  const got = GetSessionResult.parse((await client.call("get_session", { session_id: sessionId, ...auth })).result);
  assert.equal(got.status, "ok");
  assert.equal(got.session?.status, "active");
  assert.equal(got.session?.component_name, component);
  assert.equal(got.session?.hostname, hostname);
  assert.equal(got.session?.started_at, startedAt.toISOString());

  const listed = ListSessionsResult.parse(
    (await client.call("list_sessions", { component_name: component, hostname, status: "active", ...auth })).result,
  );
  assert.equal(listed.status, "ok");
  assert.deepEqual(
    listed.sessions.map((s) => s.session_id),
    [sessionId],
  );

  // The session's own length: end time minus start time as the shell saw them, not handler time.
  const endedAt = new Date(startedAt.getTime() + 65_500);
  const end = await client.call(
    "track_session_end",
    endPayload(sessionId, { timestamp: endedAt.toISOString(), metadata: { exit_reason: "eof" }, ...auth }),
  );
  const ended = SessionEndResult.parse(end.result);
  assert.equal(ended.status, "ended", JSON.stringify(end.result));
  assert.equal(ended.session_id, sessionId);
  assert.equal(ended.duration_seconds, 65.5);

  const again = SessionEndResult.parse(
    (
      await client.call(
        "track_session_end",
        endPayload(sessionId, { timestamp: new Date().toISOString(), metadata: { exit_reason: "sigterm" }, ...auth }),
      )
    ).result,
  );
  assert.equal(again.status, "ended");
  assert.equal(again.duration_seconds, 65.5, "a second end changes nothing");

  const after = GetSessionResult.parse((await client.call("get_session", { session_id: sessionId, ...auth })).result);
  assert.equal(after.session?.status, "ended");
  assert.equal(after.session?.exit_reason, "eof");
  assert.equal(after.session?.ended_at, endedAt.toISOString());
  assert.equal(after.session?.duration_seconds, 65.5);

  const beatAfterEnd = HeartbeatResult.parse(
    (await client.call("heartbeat_session", { session_id: sessionId, timestamp: new Date().toISOString(), ...auth }))
      .result,
  );
  assert.equal(beatAfterEnd.status, "ended");

  const unknown = "sess_doesnotexistdoesnotexist";
  const endUnknown = await client.call("track_session_end", endPayload(unknown, auth));
  assert.equal(SessionEndResult.parse(endUnknown.result).status, "not_found");
  assert.match(String(endUnknown.result.error), /session_id/);
  const getUnknown = await client.call("get_session", { session_id: unknown, ...auth });
  assert.equal(GetSessionResult.parse(getUnknown.result).status, "not_found");
  const beatUnknown = await client.call("heartbeat_session", {
    session_id: unknown,
    timestamp: new Date().toISOString(),
    ...auth,
  });
  assert.equal(HeartbeatResult.parse(beatUnknown.result).status, "not_found");

  const health = await client.call("health_check");
  assert.equal(health.result.status, "healthy");
  return sessionId;
}

/** Pages through list_sessions with `limit` and returns every id seen, in order. */
export async function listAllIds(client: ConnectedClient, args: Record<string, unknown>, limit = 2): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const result = ListSessionsResult.parse(
      (await client.call("list_sessions", { ...args, limit, ...(cursor ? { cursor } : {}) })).result,
    );
    assert.equal(result.status, "ok", JSON.stringify(result));
    ids.push(...result.sessions.map((s) => s.session_id));
    cursor = result.next_cursor;
    if (cursor === null) return ids;
  }
  throw new Error("list_sessions paging did not end");
}
