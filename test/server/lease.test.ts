/**
 * The lease: a session with no heartbeat or end is marked abandoned (with
 * its last-seen time) once the lease runs out, by the server's sweeper and by
 * the CLI when no server runs; `list --active` then no longer shows it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GetSessionResult, HeartbeatResult, SessionStartResult } from "../../src/contract/schemas.ts";
import { type ConnectedClient, connectHttp, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { runCli, startTracker, type TrackerProcess } from "../helpers/tracker.ts";
import { waitFor } from "../helpers/wait.ts";

const DEADLINE_MS = 30_000;
const POLL_MS = 100;

async function startSession(client: ConnectedClient, hostname: string): Promise<string> {
  const r = await client.call("track_session_start", startPayload({ hostname }));
  return SessionStartResult.parse(r.result).session_id as string;
}

async function listIds(tracker: TrackerProcess, args: string[]): Promise<string[]> {
  const result = await runCli(["list", "--json", "--store", tracker.store, ...args], {
    SHELL_SESSIONS_STATE_DIR: tracker.stateDir,
  });
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { session_id: string }[]).map((s) => s.session_id);
}

test("a session with no heartbeat is abandoned after the lease; list --active drops it; a heartbeat revives it", async (t) => {
  const tracker = await startTracker({ lease: 1 });
  t.after(() => tracker.stop());
  const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
  t.after(() => client.close());

  const sessionId = await startSession(client, "lease-host");
  const abandoned = await waitFor(
    "the session to be abandoned",
    async () => {
      const r = GetSessionResult.parse((await client.call("get_session", { session_id: sessionId })).result);
      return r.session?.status === "abandoned" ? r.session : undefined;
    },
    DEADLINE_MS,
    POLL_MS,
  );
  assert.equal(abandoned.exit_reason, "abandoned");
  assert.equal(abandoned.ended_at, null);
  assert.ok(Date.parse(abandoned.last_seen_at) <= Date.now() - 1000, "last seen at least a lease ago");

  assert.ok(!(await listIds(tracker, ["--active"])).includes(sessionId));
  assert.ok((await listIds(tracker, ["--status", "abandoned"])).includes(sessionId));

  // The shell was only unreachable: its next heartbeat makes it active again.
  const beat = HeartbeatResult.parse(
    (await client.call("heartbeat_session", { session_id: sessionId, timestamp: new Date().toISOString() })).result,
  );
  assert.equal(beat.status, "alive");
  const revived = GetSessionResult.parse((await client.call("get_session", { session_id: sessionId })).result);
  assert.ok(revived.session);
  assert.ok(Date.parse(revived.session.last_seen_at) > Date.parse(abandoned.last_seen_at));
});

test("list applies the lease itself, so --active is right even with no server sweeping", async (t) => {
  // The server's own lease is long: only the CLI's lease can abandon the session here.
  const tracker = await startTracker({ lease: 3600 });
  t.after(() => tracker.stop());
  const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
  t.after(() => client.close());
  const sessionId = await startSession(client, "cli-lease-host");
  const started = GetSessionResult.parse((await client.call("get_session", { session_id: sessionId })).result);
  const lastSeen = Date.parse(started.session?.last_seen_at ?? "");

  assert.ok((await listIds(tracker, ["--active", "--lease", "3600"])).includes(sessionId));
  await waitFor("a second to pass since the session was last seen", () => Date.now() > lastSeen + 1100, DEADLINE_MS);
  assert.ok(!(await listIds(tracker, ["--active", "--lease", "1"])).includes(sessionId));

  const shown = await runCli(["show", sessionId, "--json", "--store", tracker.store], {
    SHELL_SESSIONS_STATE_DIR: tracker.stateDir,
  });
  assert.equal(shown.code, 0, shown.stderr);
  const session = JSON.parse(shown.stdout) as { status: string; last_seen_at: string };
  assert.equal(session.status, "abandoned");
  assert.equal(Date.parse(session.last_seen_at), lastSeen, "the last-seen time is kept");
});
