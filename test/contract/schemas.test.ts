/**
 * One test per constraint of Session-Buddy event schema 1.0 (DESIGN.md's
 * table): a payload violating it is rejected with an error naming the field.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ContractError,
  SessionEndResult,
  SessionStartResult,
  toolInputJsonSchema,
  validateBatchEnvelope,
  validateBatchItem,
  validateEndEvent,
  validateStartEvent,
} from "../../src/contract/index.ts";
import { START_REQUIRED_FIELDS, validEnd, validStart, withField } from "./fixtures.ts";

function rejects(validateFn: (x: unknown) => unknown, payload: unknown, field: string, constraint?: RegExp): void {
  let caught: unknown;
  try {
    validateFn(payload);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ContractError, `expected a ContractError for ${field}, got ${String(caught)}`);
  assert.equal(caught.code, "invalid_argument");
  const issue = caught.issues.find((i) => i.field === field);
  assert.ok(issue, `error should name ${field}: ${caught.message}`);
  assert.ok(caught.message.includes(`${field}:`), caught.message);
  if (constraint) assert.match(issue.constraint, constraint);
}

describe("track_session_start arguments", () => {
  test("a complete valid payload is accepted", () => {
    const parsed = validateStartEvent(validStart());
    assert.equal(parsed.component_name, "mahavishnu");
    assert.equal(parsed.user.username, "ops");
  });

  test("metadata and token are optional", () => {
    const payload = withField(validStart(), "metadata", undefined);
    assert.equal(validateStartEvent(payload).metadata, undefined);
    assert.equal(validateStartEvent(withField(payload, "token", "abc")).token, "abc");
  });

  test("unknown fields are dropped, not rejected (as pydantic does)", () => {
    const parsed = validateStartEvent({ ...validStart(), extra_field: 1 }) as Record<string, unknown>;
    assert.equal(parsed.extra_field, undefined);
  });

  for (const field of START_REQUIRED_FIELDS) {
    test(`${field} is required`, () => {
      rejects(validateStartEvent, withField(validStart(), field, undefined), field, /is required/);
    });
  }

  test('event_version must be "1.0"', () => {
    rejects(validateStartEvent, withField(validStart(), "event_version", "1.1"), "event_version", /"1\.0"/);
    rejects(validateStartEvent, withField(validStart(), "event_version", 1.0), "event_version");
  });

  test("event_id must be a UUID version 4", () => {
    rejects(validateStartEvent, withField(validStart(), "event_id", "not-a-uuid"), "event_id", /UUID version 4/);
    // A version-1 UUID is a UUID, but not version 4.
    rejects(
      validateStartEvent,
      withField(validStart(), "event_id", "c232ab00-9414-11ec-b3c8-9f6bdeced846"),
      "event_id",
    );
    // Version nibble 4 but not the RFC 4122 variant.
    rejects(
      validateStartEvent,
      withField(validStart(), "event_id", "0f8fad5b-d9cb-469f-c165-70867728950e"),
      "event_id",
    );
  });

  test("event_id in the other forms Python's UUID accepts is accepted and canonicalised", () => {
    for (const form of [
      "0F8FAD5B-D9CB-469F-A165-70867728950E",
      "0f8fad5bd9cb469fa16570867728950e",
      "{0f8fad5b-d9cb-469f-a165-70867728950e}",
      "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
    ]) {
      assert.equal(
        validateStartEvent(withField(validStart(), "event_id", form)).event_id,
        "0f8fad5b-d9cb-469f-a165-70867728950e",
      );
    }
  });

  test('event_type must be "session_start"', () => {
    rejects(validateStartEvent, withField(validStart(), "event_type", "session_end"), "event_type", /session_start/);
  });

  test("component_name must match ^[a-zA-Z0-9_-]+$", () => {
    for (const bad of ["", "has space", "dots.not.allowed", "slash/", "ümlaut", "semi;colon"]) {
      rejects(
        validateStartEvent,
        withField(validStart(), "component_name", bad),
        "component_name",
        /\^\[a-zA-Z0-9_-\]\+\$/,
      );
    }
    assert.equal(
      validateStartEvent(withField(validStart(), "component_name", "Session-Buddy_2")).component_name,
      "Session-Buddy_2",
    );
  });

  test("shell_type and hostname must be strings", () => {
    rejects(validateStartEvent, withField(validStart(), "shell_type", 7), "shell_type", /string/);
    rejects(validateStartEvent, withField(validStart(), "hostname", null), "hostname", /string/);
  });

  test("timestamp must be an ISO 8601 time with a T that Python's fromisoformat reads", () => {
    for (const bad of ["2026-11-21 12:00:00", "2026-11-21", "21/11/2026T12:00:00", "2026-02-30T12:00:00Z", "now"]) {
      rejects(validateStartEvent, withField(validStart(), "timestamp", bad), "timestamp", /ISO 8601|'T'|calendar/);
    }
    for (const ok of [
      "2026-11-21T12:00:00",
      "2026-11-21T12:00:00Z",
      "2026-11-21T12:00:00.5+01:00",
      "2026-11-21T12:00:00.123456-05:30",
      "2026-11-21T12:00:00+0100",
      "2026-11-21T12:34Z",
      "20261121T123456Z",
    ]) {
      assert.equal(validateStartEvent(withField(validStart(), "timestamp", ok)).timestamp, ok);
    }
  });

  test("pid must be an integer from 1 to 4194304", () => {
    rejects(validateStartEvent, withField(validStart(), "pid", 0), "pid", /at least 1/);
    rejects(validateStartEvent, withField(validStart(), "pid", 4_194_305), "pid", /at most 4194304/);
    rejects(validateStartEvent, withField(validStart(), "pid", 12.5), "pid", /integer/);
    rejects(validateStartEvent, withField(validStart(), "pid", "4242"), "pid");
    assert.equal(validateStartEvent(withField(validStart(), "pid", 4_194_304)).pid, 4_194_304);
    assert.equal(validateStartEvent(withField(validStart(), "pid", 1)).pid, 1);
  });

  test("user.username is at most 100 characters (code points, as Python counts)", () => {
    rejects(
      validateStartEvent,
      withField(validStart(), "user.username", "u".repeat(101)),
      "user.username",
      /at most 100/,
    );
    assert.ok(validateStartEvent(withField(validStart(), "user.username", "u".repeat(100))));
    // 100 emoji are 200 UTF-16 units but 100 characters to Session-Buddy.
    assert.ok(validateStartEvent(withField(validStart(), "user.username", "😀".repeat(100))));
  });

  test("user.home and environment.cwd are at most 500 characters", () => {
    rejects(validateStartEvent, withField(validStart(), "user.home", "h".repeat(501)), "user.home", /at most 500/);
    rejects(
      validateStartEvent,
      withField(validStart(), "environment.cwd", "c".repeat(501)),
      "environment.cwd",
      /at most 500/,
    );
    assert.ok(validateStartEvent(withField(validStart(), "environment.cwd", "c".repeat(500))));
  });

  test("user and environment must be objects; metadata must be an object", () => {
    rejects(validateStartEvent, withField(validStart(), "user", "ops"), "user", /object/);
    rejects(validateStartEvent, withField(validStart(), "environment", []), "environment", /object/);
    rejects(validateStartEvent, withField(validStart(), "metadata", "x"), "metadata", /record|object/);
  });

  test("token, when given, must be a string", () => {
    rejects(validateStartEvent, withField(validStart(), "token", 12), "token", /string/);
  });

  test("the error names the kind of value received, never the value", () => {
    const secret = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ";
    try {
      validateStartEvent(withField(validStart(), "hostname", { nested: secret }));
      assert.fail("should reject");
    } catch (error) {
      assert.ok(error instanceof ContractError);
      assert.ok(!error.message.includes(secret));
      assert.ok(!JSON.stringify(error.toResult()).includes(secret));
      assert.match(error.message, /hostname: must be of type string \(received an object\)/);
    }
  });

  test("error text is capped however many fields are wrong", () => {
    const bad = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, i]));
    try {
      validateStartEvent({ ...bad, user: { username: 1, home: 2 }, environment: 3 });
      assert.fail("should reject");
    } catch (error) {
      assert.ok(error instanceof ContractError);
      assert.ok(error.message.length <= 1000);
      assert.ok(error.issues.length <= 20);
    }
  });

  test("a non-object payload is rejected naming the arguments", () => {
    for (const input of [null, undefined, 42, "text", [1, 2]]) {
      rejects(validateStartEvent, input, "(arguments)");
    }
  });
});

describe("track_session_end arguments", () => {
  test("a complete valid payload is accepted; metadata is optional", () => {
    assert.equal(validateEndEvent(validEnd()).session_id, "sess_abc");
    assert.equal(validateEndEvent(withField(validEnd(), "metadata", undefined)).metadata, undefined);
  });

  for (const field of ["session_id", "timestamp"]) {
    test(`${field} is required`, () => {
      rejects(validateEndEvent, withField(validEnd(), field, undefined), field, /is required/);
    });
  }

  test('event_type may be left out: it defaults to "session_end", as in Session-Buddy', () => {
    assert.equal(validateEndEvent(withField(validEnd(), "event_type", undefined)).event_type, "session_end");
  });

  test("metadata: null and token: null mean left out, as in Session-Buddy (dict | None, str | None)", () => {
    const parsed = validateEndEvent({ ...validEnd(), metadata: null, token: null });
    assert.equal(parsed.metadata, undefined);
    assert.equal(parsed.token, undefined);
    const start = validateStartEvent({ ...validStart(), metadata: null, token: null });
    assert.equal(start.metadata, undefined);
    assert.equal(start.token, undefined);
  });

  test('event_type must be "session_end"; timestamp must match; session_id must be a non-empty string', () => {
    rejects(validateEndEvent, withField(validEnd(), "event_type", "session_start"), "event_type");
    rejects(validateEndEvent, withField(validEnd(), "timestamp", "yesterday"), "timestamp");
    rejects(validateEndEvent, withField(validEnd(), "session_id", ""), "session_id");
    rejects(validateEndEvent, withField(validEnd(), "session_id", 5), "session_id");
    rejects(validateEndEvent, withField(validEnd(), "metadata", [1]), "metadata");
  });
});

describe("track_session_events arguments", () => {
  test("each item is read as the start or end its event_type names, without a token of its own", () => {
    const start = validateBatchItem({ ...validStart(), token: "per-item" }, 0);
    assert.equal(start.kind, "start");
    assert.equal("token" in start.event, false);
    const end = validateBatchItem({ ...validEnd(), event_type: "session_end" }, 1);
    assert.equal(end.kind, "end");
    assert.equal(end.kind === "end" && end.event.session_id, "sess_abc");
  });

  test("an item's error names its place in the batch and its field; an end must say it is one", () => {
    const invalid = (item: unknown, index: number) => {
      try {
        validateBatchItem(item, index);
      } catch (error) {
        assert.ok(error instanceof ContractError);
        return { message: error.message, fields: error.issues.map((i) => i.field) };
      }
      return assert.fail("accepted");
    };
    const pid = invalid({ ...validStart(), pid: 0 }, 3);
    assert.match(pid.message, /events\[3\].*pid/);
    assert.deepEqual(pid.fields, ["pid"]);
    const { event_type: _omitted, ...untyped } = validEnd();
    assert.deepEqual(invalid(untyped, 0).fields, ["event_type"]);
    assert.deepEqual(invalid("text", 7).fields, ["event_type"]);
    assert.match(invalid(null, 7).message, /events\[7\]/);
  });

  test("the envelope holds 1 to 100 events", () => {
    assert.equal(validateBatchEnvelope({ events: [{}] }).events.length, 1);
    for (const events of [[], Array.from({ length: 101 }, () => ({})), "many", undefined]) {
      assert.throws(
        () => validateBatchEnvelope({ events }),
        (error: unknown) => error instanceof ContractError && error.issues.some((i) => i.field === "events"),
      );
    }
  });
});

describe("results", () => {
  test("start result: session_id is null on error; status is tracked or error", () => {
    assert.ok(SessionStartResult.safeParse({ session_id: "sess_1", status: "tracked" }).success);
    assert.ok(SessionStartResult.safeParse({ session_id: null, status: "error", error: "boom" }).success);
    assert.ok(!SessionStartResult.safeParse({ session_id: "x", status: "ok" }).success);
  });

  test("end result: status is ended, error or not_found", () => {
    for (const status of ["ended", "error", "not_found"]) {
      assert.ok(SessionEndResult.safeParse({ session_id: "s", status }).success, status);
    }
    assert.ok(!SessionEndResult.safeParse({ session_id: "s", status: "tracked" }).success);
  });
});

describe("tool input schemas are derived from the zod schemas", () => {
  test("track_session_start's JSON Schema carries the table's constraints", () => {
    const schema = toolInputJsonSchema("track_session_start") as {
      type: string;
      required: string[];
      properties: Record<string, { pattern?: string; minimum?: number; maximum?: number }>;
    };
    assert.equal(schema.type, "object");
    for (const field of ["event_version", "event_id", "event_type", "component_name", "pid", "user", "environment"]) {
      assert.ok(schema.required.includes(field), field);
    }
    assert.equal(schema.properties.component_name?.pattern, "^[a-zA-Z0-9_-]+$");
    assert.equal(schema.properties.pid?.minimum, 1);
    assert.equal(schema.properties.pid?.maximum, 4_194_304);
    assert.ok(!schema.required.includes("metadata"));
  });
});
