/**
 * The exporter finds out which MCP protocol era its tracker speaks, over HTTP
 * and stdio: the stateless revision 2026-07-28 from our tracker and from a
 * modern-only server, the 2025 handshake from a legacy-only (Session-Buddy
 * like) server. It probes once per connection object and remembers the answer
 * across reconnects and, in the state dir, for later processes; and names the
 * era in its debug log.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { McpConnection } from "../../src/exporter/client.ts";
import { ERAS_DIR_NAME, type EraMemory, eraMemory } from "../../src/exporter/era-memory.ts";
import type { DeliveryFailure } from "../../src/exporter/errors.ts";
import { createLogger } from "../../src/log.ts";
import {
  type MinimalEra,
  minimalStdioCommand,
  readMethods,
  readRecords,
  startMinimalHttp,
} from "../helpers/session-buddy-minimal.ts";
import { CLI_PATH, startTracker } from "../helpers/tracker.ts";
import {
  deliveryEnv,
  endSession,
  harness,
  randomSecret,
  startSession,
  storedSessions,
  tempDir,
  trackerSessionId,
  waitFor,
} from "./support.ts";

const ERA_LINE = {
  stateless: /connected over MCP 2026-07-28, stateless era/,
  handshake: /connected over MCP 2025-11-25, handshake era/,
};

/**
 * Over stdio a probe the server leaves unanswered for half the call timeout
 * means a handshake-era server: room enough that a busy machine's slow
 * start-up is not mistaken for that.
 */
const STDIO_TIMEOUT = { SHELL_SESSIONS_CALL_TIMEOUT_MS: "10000" };

/**
 * The exporter keeps its connection between sessions; told to close it as
 * soon as it is idle, it reconnects for every session.
 */
const RECONNECT = { SHELL_SESSIONS_IDLE_CLOSE_MS: "0" };

/** Two sessions one after the other (with RECONNECT, the second connects again). */
async function twoSessions(h: ReturnType<typeof harness>): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const span = startSession(h.provider);
    ids.push(await trackerSessionId(span));
    endSession(span);
    await waitFor("the end to be delivered", () => h.processor.delivery.pending === 0);
  }
  return ids;
}

function connectLines(h: ReturnType<typeof harness>): string[] {
  return h.logs.filter((line) => /connected over MCP/.test(line));
}

for (const kind of ["http", "stdio"] as const) {
  test(`${kind}: against our tracker the exporter speaks 2026-07-28 and the sessions are recorded`, async (t) => {
    const dir = tempDir(t);
    const secret = randomSecret();
    let env: NodeJS.ProcessEnv;
    let store: string;
    if (kind === "http") {
      const tracker = await startTracker({ secret });
      t.after(() => tracker.stop());
      store = tracker.store;
      env = deliveryEnv(dir, { SESSION_BUDDY_URL: tracker.url, SESSION_BUDDY_SECRET: secret });
    } else {
      store = `sqlite:${join(dir, "tracker.db")}`;
      const command = JSON.stringify([process.execPath, CLI_PATH, "serve", "--stdio", "--store", store]);
      env = deliveryEnv(dir, { SESSION_BUDDY_COMMAND: command, SESSION_BUDDY_SECRET: secret, ...STDIO_TIMEOUT });
    }
    const h = harness(t, env);
    const ids = await twoSessions(h);
    const { sessions } = await storedSessions(store);
    assert.deepEqual(sessions.map((s) => s.session_id).sort(), [...ids].sort());
    assert.ok(sessions.every((s) => s.status === "ended"));
    const lines = connectLines(h);
    // The default keeps the connection (over stdio, the tracker process) open between sessions.
    assert.equal(lines.length, 1, `one connection for both sessions: ${lines.join("")}`);
    assert.ok(ERA_LINE.stateless.test(lines[0] ?? ""), lines.join(""));
    assert.deepEqual(h.warnings, []);
  });

  for (const era of ["legacy", "modern"] as const satisfies readonly MinimalEra[]) {
    const expected = era === "legacy" ? "handshake" : "stateless";
    test(`${kind}: against a ${era}-only server the exporter speaks the ${expected} era and probes once`, async (t) => {
      const dir = tempDir(t);
      const record = join(dir, "calls.jsonl");
      const methods = join(dir, "methods.jsonl");
      let env: NodeJS.ProcessEnv;
      if (kind === "http") {
        const server = await startMinimalHttp({ record, methods, era });
        t.after(() => server.stop());
        env = deliveryEnv(dir, { SESSION_BUDDY_URL: server.url, ...RECONNECT });
      } else {
        env = deliveryEnv(dir, {
          SESSION_BUDDY_COMMAND: minimalStdioCommand({ record, methods, era }),
          ...STDIO_TIMEOUT,
          ...RECONNECT,
        });
      }
      const h = harness(t, env);
      await twoSessions(h);
      const calls = readRecords(record).map((r) => r.tool);
      assert.deepEqual(calls, ["track_session_start", "track_session_end", "track_session_start", "track_session_end"]);
      const lines = connectLines(h);
      assert.ok(lines.length >= 2, `the idle connection was closed and opened again: ${lines.join("")}`);
      assert.ok(ERA_LINE[expected].test(lines[0] ?? ""), lines.join(""));
      assert.ok(
        lines.slice(1).every((line) => /known from an earlier connect/.test(line)),
        lines.join(""),
      );
      const seen = readMethods(methods);
      assert.equal(seen.filter((m) => m === "server/discover").length, 1, `one probe in all: ${seen.join(", ")}`);
      const handshakes = seen.filter((m) => m === "initialize").length;
      if (era === "modern") assert.equal(handshakes, 0, "a modern-only server never sees initialize");
      else assert.equal(handshakes, lines.length, "one handshake per connect, no probe after the first");
      assert.deepEqual(h.warnings, []);
    });
  }
}

/** The exporter's connection object on its own, logging at debug level, closed after `t`. */
function httpConnection(t: { after(fn: () => void): void }, url: string, eras?: EraMemory) {
  const logs: string[] = [];
  const connection = new McpConnection({
    transport: { kind: "http", url: new URL(url) },
    timeoutMs: 5000,
    bearer: undefined,
    env: {},
    log: createLogger("debug", (line) => logs.push(line)),
    eras,
  });
  t.after(() => connection.close());
  return { connection, logs };
}

test("a connection remembers a handshake-only tracker across resets: one probe, then straight to initialize", async (t) => {
  const dir = tempDir(t);
  const methods = join(dir, "methods.jsonl");
  const server = await startMinimalHttp({ record: join(dir, "calls.jsonl"), methods, era: "legacy" });
  t.after(() => server.stop());
  const { connection, logs } = httpConnection(t, server.url);
  assert.equal(connection.era, undefined);
  for (let i = 0; i < 4; i++) {
    assert.equal(await connection.supports("track_session_start"), true);
    assert.equal(connection.era, "handshake");
    connection.reset();
  }
  const seen = readMethods(methods);
  assert.equal(seen.filter((m) => m === "server/discover").length, 1, seen.join(", "));
  assert.equal(seen.filter((m) => m === "initialize").length, 4, seen.join(", "));
  assert.equal(logs.filter((line) => /handshake era/.test(line)).length, 4);
});

test("a remembered era that no longer fits is dropped: the next connect probes again", async (t) => {
  const dir = tempDir(t);
  const record = join(dir, "calls.jsonl");
  const legacy = await startMinimalHttp({ record, era: "legacy" });
  const port = Number(new URL(legacy.url).port);
  const { connection, logs } = httpConnection(t, legacy.url);
  assert.equal(await connection.supports("track_session_start"), true);
  assert.equal(connection.era, "handshake");
  connection.reset();
  // The tracker is replaced, on the same address, by one that speaks only 2026-07-28.
  await legacy.stop();
  const modern = await startMinimalHttp({ record, era: "modern", port });
  t.after(() => modern.stop());
  await assert.rejects(
    connection.supports("track_session_start"),
    (error: DeliveryFailure) => error.errorType === "http_400" && /Unsupported protocol version/.test(error.message),
  );
  assert.equal(connection.era, undefined, "the stale verdict is forgotten");
  assert.equal(await connection.supports("track_session_start"), true);
  assert.equal(connection.era, "stateless");
  assert.ok(
    logs.some((line) => /no longer answers in the legacy era/.test(line)),
    logs.join(""),
  );
});

test("the era is remembered in the state dir: a later process connects with no probe; a damaged or stale record costs one probe", async (t) => {
  const dir = tempDir(t);
  const methods = join(dir, "methods.jsonl");
  const record = join(dir, "calls.jsonl");
  const legacy = await startMinimalHttp({ record, methods, era: "legacy" });
  const port = Number(new URL(legacy.url).port);
  // Each connection stands for a new process: its own connection object and its own view of the state dir.
  const memory = () => eraMemory(dir, { kind: "http", url: new URL(legacy.url) });
  const probes = () => readMethods(methods).filter((m) => m === "server/discover").length;
  const recordFile = () => {
    const files = readdirSync(join(dir, ERAS_DIR_NAME));
    assert.equal(files.length, 1, files.join(", "));
    return join(dir, ERAS_DIR_NAME, files[0] as string);
  };

  const first = httpConnection(t, legacy.url, memory());
  assert.equal(await first.connection.supports("track_session_start"), true);
  assert.equal(probes(), 1);
  assert.doesNotMatch(readFileSync(recordFile(), "utf8"), new RegExp(String(port)), "the address is not in the file");

  const later = httpConnection(t, legacy.url, memory());
  assert.equal(await later.connection.supports("track_session_start"), true);
  assert.equal(later.connection.era, "handshake");
  assert.equal(probes(), 1, "no probe: the era came from the state dir");
  assert.ok(
    later.logs.some((line) => /handshake era \(known from an earlier connect\)/.test(line)),
    later.logs.join(""),
  );

  writeFileSync(recordFile(), "{ damaged");
  const afterDamage = httpConnection(t, legacy.url, memory());
  assert.equal(await afterDamage.connection.supports("track_session_start"), true);
  assert.equal(probes(), 2, "a damaged record is ignored: one probe");
  assert.deepEqual(JSON.parse(readFileSync(recordFile(), "utf8")), { kind: "legacy" }, "and written again");

  // The tracker is replaced, on the same address, by one that speaks only 2026-07-28.
  await legacy.stop();
  const modern = await startMinimalHttp({ record, methods, era: "modern", port });
  t.after(() => modern.stop());
  const afterUpgrade = httpConnection(t, legacy.url, memory());
  await assert.rejects(afterUpgrade.connection.supports("track_session_start"), /Unsupported protocol version/);
  assert.deepEqual(readdirSync(join(dir, ERAS_DIR_NAME)), [], "the stale record is forgotten");
  assert.equal(await afterUpgrade.connection.supports("track_session_start"), true);
  assert.equal(afterUpgrade.connection.era, "stateless");
  assert.equal(JSON.parse(readFileSync(recordFile(), "utf8")).kind, "modern");
});

test("stdio: a handshake-era server that exits on server/discover costs one failed connect, then the handshake", async (t) => {
  const dir = tempDir(t);
  const record = join(dir, "calls.jsonl");
  const methods = join(dir, "methods.jsonl");
  const command = minimalStdioCommand({ record, methods, era: "legacy", exitOnProbe: true });
  const h = harness(t, deliveryEnv(dir, { SESSION_BUDDY_COMMAND: command, ...STDIO_TIMEOUT, ...RECONNECT }));
  await twoSessions(h);
  const calls = readRecords(record).map((r) => r.tool);
  assert.deepEqual(calls, ["track_session_start", "track_session_end", "track_session_start", "track_session_end"]);
  assert.ok(
    h.logs.some((line) => /ended on server\/discover: handshake era from now on/.test(line)),
    h.logs.join(""),
  );
  const lines = connectLines(h);
  assert.ok(lines.length >= 2 && lines.every((line) => ERA_LINE.handshake.test(line)), lines.join(""));
  const seen = readMethods(methods);
  assert.equal(seen.filter((m) => m === "server/discover").length, 1, `one probe in all: ${seen.join(", ")}`);
});
