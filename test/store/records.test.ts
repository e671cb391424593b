import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ContractError } from "../../src/contract/errors.ts";
import { TIMESTAMP_PATTERN } from "../../src/contract/schemas.ts";
import {
  decodeCursor,
  encodeCursor,
  newSessionId,
  parseEventTime,
  storableJson,
  storableText,
  traceIdOf,
} from "../../src/store/records.ts";
import { listSessionsSql, pendingMigrations } from "../../src/store/sql.ts";

const MIN_MS = Date.parse("0001-01-01T00:00:00.000Z");
const MAX_MS = Date.parse("9999-12-31T23:59:59.999Z");

test("event times: every zone form maps to the same instant, fractions are cut to milliseconds", () => {
  const cases: [string, string][] = [
    ["2026-01-31T12:00:00Z", "2026-01-31T12:00:00.000Z"],
    ["2026-01-31T12:00:00", "2026-01-31T12:00:00.000Z"],
    ["2026-01-31T12:00:00.5", "2026-01-31T12:00:00.500Z"],
    ["2026-01-31T12:00:00.123999999Z", "2026-01-31T12:00:00.123Z"],
    ["2026-01-31T13:30:00+01:30", "2026-01-31T12:00:00.000Z"],
    ["2026-01-31T00:00:00-05:00", "2026-01-31T05:00:00.000Z"],
    ["2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z"],
    ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"],
    ["0099-06-01T00:00:00Z", "0099-06-01T00:00:00.000Z"],
  ];
  for (const [input, expected] of cases)
    assert.equal(parseEventTime("timestamp", input).toISOString(), expected, input);
});

test("event times the calendar does not have are refused, naming the field", () => {
  for (const input of [
    "2026-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-01-31T24:00:00Z",
    "2026-01-31T12:60:00Z",
    "2026-01-31T12:00:60Z",
    "2026-01-31T12:00:00+24:00",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+00:01",
    "9999-12-31T23:59:59-00:01",
    "yesterday",
  ]) {
    assert.throws(
      () => parseEventTime("started_after", input),
      (error: unknown) =>
        error instanceof ContractError &&
        error.code === "invalid_argument" &&
        error.message.startsWith("started_after: ") &&
        error.issues[0]?.field === "started_after" &&
        !error.message.includes(input),
      input,
    );
  }
});

test("every UTC instant in range survives printing and parsing back (property)", () => {
  fc.assert(
    fc.property(fc.integer({ min: MIN_MS, max: MAX_MS }), (ms) => {
      const iso = new Date(ms).toISOString();
      assert.match(iso, TIMESTAMP_PATTERN);
      assert.equal(parseEventTime("timestamp", iso).getTime(), ms);
    }),
  );
});

test("cursors round-trip; anything else is refused (property)", () => {
  fc.assert(
    fc.property(fc.integer({ min: MIN_MS, max: MAX_MS }), fc.stringMatching(/^[A-Za-z0-9_-]{1,60}$/), (ms, id) => {
      const started_at = new Date(ms).toISOString();
      const cursor = encodeCursor({ started_at, session_id: id } as Parameters<typeof encodeCursor>[0]);
      assert.deepEqual(decodeCursor(cursor), { startedAt: started_at, sessionId: id });
    }),
  );
  fc.assert(
    fc.property(fc.string(), (junk) => {
      try {
        const key = decodeCursor(junk);
        // The only strings that decode are ones that encode a real key.
        assert.equal(typeof key.sessionId, "string");
        assert.match(key.startedAt, TIMESTAMP_PATTERN);
      } catch (error) {
        assert.ok(error instanceof ContractError && error.message.startsWith("cursor: "));
      }
    }),
  );
});

test("session ids: prefix plus 128 random bits", () => {
  const ids = new Set(Array.from({ length: 1000 }, newSessionId));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^sess_[A-Za-z0-9_-]{22}$/);
});

test("storable text and JSON: NUL and lone surrogates become U+FFFD; token keys are dropped at any depth", () => {
  assert.equal(storableText("a\u0000b\ud800c\udc00d🙂"), "a\ufffdb\ufffdc\ufffdd🙂");
  assert.deepEqual(
    storableJson({
      token: "x",
      TOKEN: "x",
      keep: [1, { token: "x", n: Number.NaN, ok: true }],
      "k\u0000": "\ud83d",
      u: undefined,
    }),
    { keep: [1, { n: null, ok: true }], "k\ufffd": "\ufffd" },
  );
});

test("trace id prefers metadata.trace_id, then correlation_id", () => {
  const a = "a".repeat(32);
  const b = "b".repeat(32);
  assert.equal(traceIdOf({ trace_id: a, correlation_id: b }), a);
  assert.equal(traceIdOf({ correlation_id: b }), b);
  assert.equal(traceIdOf(undefined), null);
});

test("list SQL binds every value as a parameter, never as text", () => {
  const hostile = "x'); DROP TABLE sessions; --";
  const { sql, params, limit } = listSessionsSql(
    { component_name: "c", hostname: hostile, status: "active", limit: 7 },
    (n) => `$${n}`,
  );
  assert.ok(!sql.includes(hostile));
  assert.deepEqual(params, ["c", "active", hostile, 8]);
  assert.equal(limit, 7);
  assert.equal(listSessionsSql({}, (n) => `?${n}`).limit, 50);
  assert.equal(listSessionsSql({ limit: 10_000 }, (n) => `?${n}`).limit, 500);
});

test("pending migrations run in order; a newer database is refused", () => {
  const all = [
    { version: 2, name: "two", sql: "" },
    { version: 1, name: "one", sql: "" },
  ];
  assert.deepEqual(
    pendingMigrations([], all).map((m) => m.version),
    [1, 2],
  );
  assert.deepEqual(
    pendingMigrations([1], all).map((m) => m.version),
    [2],
  );
  assert.deepEqual(pendingMigrations([1, 2], all), []);
  assert.throws(() => pendingMigrations([1, 2, 3], all), /version 3, newer .* \(2\): upgrade/);
});
