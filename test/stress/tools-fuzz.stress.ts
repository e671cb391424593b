/**
 * The tracker's tools against generated hostile arguments, over real MCP
 * (the SDK's client, Streamable HTTP, a real `shell-sessions serve` process
 * with JWT auth and a SQLite store).
 *
 * Every argument set is invalid by construction (see support/hostile.ts), so
 * every answer must be a structured error that names a broken field and does
 * not repeat what was sent; the server must stay up, and the store must be
 * exactly as it was. STRESS_FUZZ_CASES sets the cases per tool (default
 * 10,000); FC_SEED replays a run.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import fc from "fast-check";
import { TOOL_LIST } from "../../src/server/tools.ts";
import { openStore } from "../../src/store/index.ts";
import type { SessionStore } from "../../src/store/types.ts";
import { type ConnectedClient, connectHttp, endPayload, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";
import { allSessions } from "./support/fleet.ts";
import { fuzz, fuzzCases } from "./support/fuzz.ts";
import { FUZZED_TOOLS, type HostileCase, hostileArgs, hostileObject, unknownToolNames } from "./support/hostile.ts";

const CASES = fuzzCases();
const CLIENTS = 4;
const COMPONENT = "fuzz";
/** Invalid arguments are refused by validation or authentication, before anything is looked up or written. */
const EXPECTED_CODES = new Set(["invalid_argument", "unauthenticated"]);

let tracker: TrackerProcess;
let token: string;
let clients: ConnectedClient[] = [];
let store: SessionStore;
let sessionIds: string[] = [];
let snapshot: string;

async function storeState(): Promise<string> {
  const sessions = await allSessions(store);
  return JSON.stringify({ events: await store.countEvents(), sessions });
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 600 ? `${text.slice(0, 600)}… (${text.length} characters)` : text;
}

function checkRefusal(tool: string, c: HostileCase, raw: CallToolResult, result: Record<string, unknown>): void {
  const context = `${tool} with ${c.broken.join(", ")} broken: ${shown(c.args)} → ${shown(result)}`;
  assert.equal(result.status, "error", context);
  assert.equal(raw.isError, true, context);
  assert.ok(EXPECTED_CODES.has(String(result.code)), `unexpected code: ${context}`);
  const error = result.error;
  assert.ok(typeof error === "string" && error.length > 0, `no error text: ${context}`);
  assert.ok(
    c.broken.some((field) => error.includes(field)),
    `the error names none of the broken fields: ${context}`,
  );
  for (const secret of [...c.secrets, token]) {
    assert.ok(!error.includes(secret), `the error repeats a value that was sent: ${context}`);
  }
}

async function callSpread(tool: string, args: Record<string, unknown>, i: number) {
  const client = clients[i % clients.length] as ConnectedClient;
  return client.call(tool, args);
}

describe("tracker tools under hostile arguments", { timeout: 900_000 }, () => {
  before(async () => {
    tracker = await startTracker({ lease: 3600 });
    token = await tokenFor(tracker.secret as string, COMPONENT);
    clients = await Promise.all(Array.from({ length: CLIENTS }, () => connectHttp(tracker.url, { token })));
    // Sessions that exist, so that ids the tools accept are among the generated ones, and "unchanged" means something.
    const [first] = clients as [ConnectedClient];
    for (let i = 0; i < 3; i++) {
      const { result } = await first.call("track_session_start", startPayload({ component_name: COMPONENT }));
      assert.equal(result.status, "tracked");
      sessionIds.push(String(result.session_id));
    }
    const ended = await first.call("track_session_end", endPayload(sessionIds[0] as string));
    assert.equal(ended.result.status, "ended");
    store = await openStore(tracker.store);
    snapshot = await storeState();
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await store?.close();
    await tracker?.stop();
    sessionIds = [];
  });

  for (const tool of FUZZED_TOOLS) {
    test(`${tool}: ${CASES} invalid argument sets each get a structured error and change nothing`, async () => {
      const answered = await fuzz(hostileArgs(tool, COMPONENT, sessionIds), CASES, async (c, i) => {
        const { raw, result } = await callSpread(tool, c.args, i);
        checkRefusal(tool, c, raw, result);
      });
      assert.ok(answered >= CASES, `only ${answered} of ${CASES} cases were answered`);
      assert.equal(tracker.pid > 0 && (await isRunning(tracker)), true, "the tracker is no longer running");
      assert.equal(await storeState(), snapshot, "the store changed");
    });
  }

  test(`health_check: ${CASES} hostile argument sets are ignored (it takes none) and change nothing`, async () => {
    const answered = await fuzz(hostileObject, CASES, async (args, i) => {
      const { result } = await callSpread("health_check", args, i);
      assert.equal(result.status, "healthy", shown({ args, result }));
    });
    assert.ok(answered >= CASES);
    assert.equal(await storeState(), snapshot, "the store changed");
  });

  test(`${CASES} calls of tools that do not exist each get the JSON-RPC invalid-params error (-32602) naming the tool`, async () => {
    const answered = await fuzz(
      fc.tuple(unknownToolNames(TOOL_LIST), hostileObject),
      CASES,
      async ([name, args], i) => {
        // As the MCP spec answers an unknown tool: a protocol error, not a tool result.
        await assert.rejects(callSpread(name, args, i), (error: unknown) => {
          const context = shown({ name, error: String(error) });
          assert.equal((error as { code?: unknown }).code, -32602, context);
          assert.match(String((error as Error).message), /Unknown tool/, context);
          return true;
        });
      },
    );
    assert.ok(answered >= CASES);
    assert.equal(await storeState(), snapshot, "the store changed");
  });

  test("the tracker still answers and still records a valid session afterwards", async () => {
    assert.equal(await isRunning(tracker), true);
    const [client] = clients as [ConnectedClient];
    const health = await client.call("health_check", {});
    assert.equal(health.result.status, "healthy");
    const events = await store.countEvents();
    const started = await client.call("track_session_start", startPayload({ component_name: COMPONENT }));
    assert.equal(started.result.status, "tracked");
    assert.equal(await store.countEvents(), events + 1);
  });
});

/** True while the tracker process has not exited. */
async function isRunning(t: TrackerProcess): Promise<boolean> {
  const exited = await Promise.race([
    t.exited.then(() => true),
    new Promise<boolean>((r) => setImmediate(() => r(false))),
  ]);
  return !exited;
}
