/**
 * Property tests: generated valid events always pass; every mutation that
 * breaks one constraint of the table fails with a ContractError naming the
 * broken field, and nothing else is ever thrown.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  COMPONENT_NAME_PATTERN,
  ContractError,
  canonicalUuidV4,
  validateEndEvent,
  validateStartEvent,
} from "../../src/contract/index.ts";
import { isTimestamp } from "../../src/contract/isotime.ts";
import { START_REQUIRED_FIELDS, START_REQUIRED_KEYS, START_STRING_FIELDS, withField } from "./fixtures.ts";

const RUNS = 10_000;

const date = fc.date({
  min: new Date("1970-01-01T00:00:00Z"),
  max: new Date("2999-12-31T23:59:59Z"),
  noInvalidDate: true,
});
/** The same instant in forms Session-Buddy (Python's fromisoformat) accepts besides ours. */
const SESSION_BUDDY_FORMS: ((iso: string) => string)[] = [
  (iso) => iso,
  (iso) => iso.replace(/\.\d{3}Z$/, "Z"),
  (iso) => iso.replace(/:\d{2}\.\d{3}Z$/, "Z"),
  (iso) => iso.replace(/Z$/, "+0000"),
  (iso) => iso.replace(/Z$/, "+00:00"),
  (iso) => iso.replace(/Z$/, ""),
  (iso) => iso.replace(/\.(\d{3})Z$/, ",$1Z"),
  (iso) => iso.replace(/[-:]/g, "").replace(/\.\d{3}/, ""),
];
const timestamp = fc.tuple(date, fc.constantFrom(...SESSION_BUDDY_FORMS)).map(([d, form]) => form(d.toISOString()));
const text = (maxLength?: number) => fc.string({ unit: "binary", ...(maxLength !== undefined ? { maxLength } : {}) });

const validStartEvent = fc.record(
  {
    event_version: fc.constant("1.0"),
    event_id: fc.uuid({ version: 4 }),
    event_type: fc.constant("session_start"),
    component_name: fc.stringMatching(COMPONENT_NAME_PATTERN),
    shell_type: text(),
    timestamp,
    pid: fc.integer({ min: 1, max: 4_194_304 }),
    user: fc.record({ username: text(100), home: text(500) }),
    hostname: text(),
    environment: fc.record({ python_version: text(), platform: text(), cwd: text(500) }),
    metadata: fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })),
    token: fc.string(),
  },
  { requiredKeys: [...START_REQUIRED_KEYS] },
);

/** Not a string, and not null either: Session-Buddy takes `token: null` as no token. */
const notAString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.object({ maxDepth: 1 }),
);
const notAnObject = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 2 }),
);

/** One broken constraint: the field it breaks and the value that breaks it (undefined = removed). */
const mutation: fc.Arbitrary<{ field: string; value: unknown }> = fc.oneof(
  fc.constantFrom(...START_REQUIRED_FIELDS).map((field) => ({ field, value: undefined })),
  fc
    .string()
    .filter((s) => s !== "1.0")
    .map((value) => ({ field: "event_version", value })),
  fc
    .string()
    .filter((s) => canonicalUuidV4(s) === null)
    .map((value) => ({ field: "event_id", value })),
  fc.uuid({ version: 1 }).map((value) => ({ field: "event_id", value })),
  fc
    .string()
    .filter((s) => s !== "session_start")
    .map((value) => ({ field: "event_type", value })),
  fc
    .string()
    .filter((s) => !COMPONENT_NAME_PATTERN.test(s))
    .map((value) => ({ field: "component_name", value })),
  fc
    .string()
    .filter((s) => !isTimestamp(s))
    .map((value) => ({ field: "timestamp", value })),
  fc
    .oneof(fc.integer({ max: 0 }), fc.integer({ min: 4_194_305 }), fc.double({ noInteger: true }), fc.string())
    .map((value) => ({ field: "pid", value })),
  fc.string({ unit: "binary", minLength: 101, maxLength: 300 }).map((value) => ({ field: "user.username", value })),
  fc.string({ minLength: 501, maxLength: 900 }).map((value) => ({ field: "user.home", value })),
  fc.string({ minLength: 501, maxLength: 900 }).map((value) => ({ field: "environment.cwd", value })),
  fc.tuple(fc.constantFrom(...START_STRING_FIELDS), notAString).map(([field, value]) => ({ field, value })),
  fc.tuple(fc.constantFrom("user", "environment"), notAnObject).map(([field, value]) => ({ field, value })),
  // `metadata: null` is allowed (Session-Buddy: `dict | None = None`); nothing else that is not an object is.
  notAnObject.filter((v) => v !== null).map((value) => ({ field: "metadata", value })),
);

function assertRejectedNaming(validateFn: (x: unknown) => unknown, input: unknown, field: string): void {
  try {
    validateFn(input);
  } catch (error) {
    if (!(error instanceof ContractError)) throw error;
    assert.ok(
      error.issues.some((i) => i.field === field),
      `error should name ${field}: ${error.message}`,
    );
    return;
  }
  assert.fail(`payload with broken ${field} was accepted`);
}

test(`${RUNS} generated valid start events are accepted`, () => {
  fc.assert(
    fc.property(validStartEvent, (event) => {
      const parsed = validateStartEvent(event);
      assert.equal(parsed.pid, event.pid);
      assert.equal(parsed.event_id, event.event_id.toLowerCase());
    }),
    { numRuns: RUNS },
  );
});

test(`${RUNS} mutated start events are rejected with a ContractError naming the field`, () => {
  fc.assert(
    fc.property(validStartEvent, mutation, (event, { field, value }) => {
      assertRejectedNaming(validateStartEvent, withField(event, field, value), field);
    }),
    { numRuns: RUNS },
  );
});

test(`${RUNS} arbitrary JSON values never make validation throw anything but ContractError`, () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
      for (const validateFn of [validateStartEvent, validateEndEvent]) {
        try {
          validateFn(value);
        } catch (error) {
          assert.ok(error instanceof ContractError, String(error));
        }
      }
    }),
    { numRuns: RUNS },
  );
});

test("hostile objects (throwing getters, proxies) are answered with a ContractError", () => {
  const throwing = Object.defineProperty({}, "event_version", {
    enumerable: true,
    get() {
      throw new Error("boom");
    },
  });
  const proxy = new Proxy(
    {},
    {
      get() {
        throw new Error("trap");
      },
    },
  );
  for (const input of [throwing, proxy]) {
    assert.throws(() => validateStartEvent(input), ContractError);
  }
});
