/**
 * Session-Buddy event schema 1.0 over MCP: every payload the real
 * Session-Buddy's models accept is accepted here, and each violation of its
 * table is refused with an error naming the field, writing nothing.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { SessionEndResult, SessionStartResult } from "../../src/contract/schemas.ts";
import { openStore } from "../../src/store/index.ts";
import type { SessionStore } from "../../src/store/types.ts";
import { type ConnectedClient, connectHttp, endPayload, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";

function without(payload: Record<string, unknown>, path: string): Record<string, unknown> {
  const copy = structuredClone(payload);
  const keys = path.split(".");
  let target = copy;
  for (const key of keys.slice(0, -1)) target = target[key] as Record<string, unknown>;
  delete target[keys.at(-1) as string];
  return copy;
}

function withValue(payload: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(payload);
  const keys = path.split(".");
  let target = copy;
  for (const key of keys.slice(0, -1)) target = target[key] as Record<string, unknown>;
  target[keys.at(-1) as string] = value;
  return copy;
}

const MISSING = Symbol("missing");

/** [field, bad value or MISSING]: one row per constraint of the table. */
const START_VIOLATIONS: [string, unknown][] = [
  ["event_version", "2.0"],
  ["event_version", 1.0],
  ["event_version", MISSING],
  ["event_id", "not-a-uuid"],
  ["event_id", "c232ab00-9414-11ec-b3c8-9f6bdeced846"], // version 1
  ["event_id", MISSING],
  ["event_type", "session_end"],
  ["event_type", MISSING],
  ["component_name", "bad name"],
  ["component_name", ""],
  ["component_name", "café"],
  ["component_name", MISSING],
  ["shell_type", 42],
  ["shell_type", MISSING],
  ["timestamp", "2026-01-31 12:00:00"],
  ["timestamp", "yesterday"],
  ["timestamp", "2026-01-31T12:00:00+2"],
  ["timestamp", MISSING],
  ["pid", 0],
  ["pid", 4_194_305],
  ["pid", 1.5],
  ["pid", "42"],
  ["pid", MISSING],
  ["user", MISSING],
  ["user", "operator"],
  ["user.username", MISSING],
  ["user.username", "u".repeat(101)],
  ["user.home", MISSING],
  ["user.home", "h".repeat(501)],
  ["hostname", 7],
  ["hostname", MISSING],
  ["environment", MISSING],
  ["environment.python_version", MISSING],
  ["environment.platform", MISSING],
  ["environment.cwd", MISSING],
  ["environment.cwd", "c".repeat(501)],
  ["metadata", "not an object"],
  ["metadata", ["an", "array"]],
];

const END_VIOLATIONS: [string, unknown][] = [
  ["session_id", MISSING],
  ["session_id", ""],
  ["session_id", 12],
  ["timestamp", "31/01/2026"],
  ["timestamp", MISSING],
  ["event_type", "session_start"],
  ["metadata", "exit"],
];

describe("Session-Buddy 1.0 payloads over MCP", () => {
  let tracker: TrackerProcess;
  let store: SessionStore;
  let client: ConnectedClient;
  let token: string;

  before(async () => {
    tracker = await startTracker();
    store = await openStore(tracker.store);
    token = await tokenFor(tracker.secret as string, "mahavishnu");
    client = await connectHttp(tracker.url);
  });
  after(async () => {
    await client?.close();
    await store?.close();
    await tracker?.stop();
  });

  async function expectTracked(payload: Record<string, unknown>) {
    const r = await client.call("track_session_start", { ...payload, token });
    const result = SessionStartResult.parse(r.result);
    assert.equal(result.status, "tracked", JSON.stringify(r.result));
    return result.session_id as string;
  }

  test("a fully valid payload, and every variation the real models also accept, is tracked", async () => {
    const id = await expectTracked(startPayload());
    const session = await store.getSession(id);
    assert.equal(session?.component_name, "mahavishnu");
    assert.deepEqual(session?.metadata, { component_version: "1.2.3", runtime: "node" });

    const uuid = randomUUID();
    const variations: Record<string, unknown>[] = [
      without(startPayload(), "metadata"),
      startPayload({ timestamp: "2026-01-31T12:00:00" }),
      startPayload({ timestamp: "2026-01-31T12:00:00.123456+02:00" }),
      startPayload({ event_id: uuid.toUpperCase().replace(/-/g, "") }),
      startPayload({ event_id: `{${randomUUID()}}` }),
      startPayload({ pid: 1 }),
      startPayload({ pid: 4_194_304 }),
      startPayload({ component_name: "Oneiric_admin-2" }),
      startPayload({ user: { username: "😀".repeat(100), home: "h".repeat(500) } }),
      startPayload({ environment: { python_version: "", platform: "", cwd: "c".repeat(500) } }),
      startPayload({ unknown_field: "ignored, as pydantic does", metadata: { nested: { deep: [1, 2, 3] } } }),
    ];
    for (const payload of variations) {
      if (payload.component_name === "Oneiric_admin-2") {
        const other = await connectHttp(tracker.url, {
          token: await tokenFor(tracker.secret as string, "Oneiric_admin-2"),
        });
        const r = SessionStartResult.parse((await other.call("track_session_start", payload)).result);
        await other.close();
        assert.equal(r.status, "tracked");
        continue;
      }
      await expectTracked(payload);
    }
  });

  for (const [field, value] of START_VIOLATIONS) {
    const label = value === MISSING ? "missing" : JSON.stringify(value).slice(0, 30);
    test(`track_session_start refuses ${field} = ${label}`, async () => {
      const valid = startPayload();
      const payload = value === MISSING ? without(valid, field) : withValue(valid, field, value);
      const before = await store.countEvents();
      const r = await client.call("track_session_start", { ...payload, token });
      assert.equal(r.raw.isError, true);
      const result = SessionStartResult.parse(r.result);
      assert.equal(result.status, "error");
      assert.equal(result.session_id, null);
      assert.equal(result.code, "invalid_argument");
      assert.match(result.error ?? "", new RegExp(`${field.replace(/\./g, "\\.")}: `));
      assert.ok(
        result.issues?.some((i) => i.field === field),
        JSON.stringify(result.issues),
      );
      assert.equal(await store.countEvents(), before, "nothing was written");
      // The text item says the same, for clients of the Session-Buddy era.
      const text = r.raw.content[0];
      assert.ok(text?.type === "text");
      assert.deepEqual(JSON.parse(text.text), r.result);
    });
  }

  test("track_session_end accepts what the real models accept", async () => {
    const id = await expectTracked(startPayload());
    const r = await client.call("track_session_end", {
      ...without(endPayload(id, { timestamp: "2026-01-31T12:00:00" }), "metadata"),
      token,
    });
    assert.equal(SessionEndResult.parse(r.result).status, "ended");
  });

  for (const [field, value] of END_VIOLATIONS) {
    const label = value === MISSING ? "missing" : JSON.stringify(value);
    test(`track_session_end refuses ${field} = ${label}`, async () => {
      const id = await expectTracked(startPayload());
      const valid = endPayload(id);
      const payload = value === MISSING ? without(valid, field) : withValue(valid, field, value);
      const before = await store.countEvents();
      const r = await client.call("track_session_end", { ...payload, token });
      const result = SessionEndResult.parse(r.result);
      assert.equal(result.status, "error");
      assert.equal(result.code, "invalid_argument");
      assert.match(result.error ?? "", new RegExp(`${field}: `));
      assert.equal(await store.countEvents(), before, "nothing was written");
      assert.equal((await store.getSession(id))?.status, "active");
    });
  }
});
