/** The client-side sanitiser turns any host data into a payload the contract accepts. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  buildEndEvent,
  buildStartEvent,
  codePointLength,
  sanitizeComponentName,
  sanitizeMetadata,
  sanitizeText,
  truncateCodePoints,
  validateEndEvent,
  validateStartEvent,
} from "../../src/contract/index.ts";

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

test("the hostile host data of the issue validates: control characters, 10 kB strings, empty username", () => {
  const event = buildStartEvent({
    componentName: "my component!\n",
    shellType: "Shell\u001b[31m",
    username: "",
    home: "/home/\u0000x",
    hostname: "h".repeat(10_000),
    cwd: "/srv/app\nwith\rnewlines\t".repeat(1000),
    platform: "linux\u0007",
    metadata: { note: "x".repeat(10_000), "\u0000": 1 },
  });
  const parsed = validateStartEvent(event);
  assert.equal(parsed.user.username, "unknown");
  assert.equal(parsed.component_name, "my_component__");
  assert.ok(!CONTROL.test(parsed.environment.cwd));
  assert.ok(codePointLength(parsed.environment.cwd) <= 500);
  assert.ok(!CONTROL.test(parsed.shell_type));
  assert.ok(!CONTROL.test(JSON.stringify(parsed.metadata).replace(/\\u00[0-9a-f]{2}/g, "")));
});

test("a 300-character username is truncated to 100 characters, never split inside a surrogate pair", () => {
  const event = buildStartEvent({ username: "😀".repeat(300) });
  assert.equal(codePointLength(event.user.username), 100);
  assert.ok(!/[\ud800-\udbff]$/.test(event.user.username));
  assert.equal(truncateCodePoints("a😀b", 2), "a😀");
});

test("lone surrogates become U+FFFD so the payload is valid UTF-8", () => {
  assert.equal(sanitizeText("a\ud800b"), "a\ufffdb");
  assert.equal(sanitizeText("\udc00"), "\ufffd");
});

test("component names keep only the allowed characters and are never empty", () => {
  assert.equal(sanitizeComponentName("session-buddy"), "session-buddy");
  assert.equal(sanitizeComponentName("a.b c"), "a_b_c");
  assert.equal(sanitizeComponentName(""), "unknown");
  assert.equal(sanitizeComponentName("..."), "unknown");
  assert.equal(sanitizeComponentName(undefined), "unknown");
});

test("metadata becomes plain bounded JSON: no cycles, functions, prototype keys or non-finite numbers", () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const polluting = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}');
  const meta = sanitizeMetadata({
    cyclic,
    fn: () => 1,
    big: 10n,
    inf: Number.POSITIVE_INFINITY,
    when: new Date("2026-01-01T00:00:00Z"),
    polluting,
    deep: { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } },
  });
  assert.deepEqual(meta.cyclic, { a: 1 });
  assert.equal(meta.fn, undefined);
  assert.equal(meta.big, "10");
  assert.equal(meta.inf, null);
  assert.equal(meta.when, "2026-01-01T00:00:00.000Z");
  assert.deepEqual(meta.polluting, { ok: 1 });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.ok(JSON.stringify(meta).length < 10_000);
  assert.deepEqual(sanitizeMetadata("not an object"), {});
});

test("10,000 generated hostile host facts always produce a valid start event, and never throw", () => {
  const anything = fc.oneof(
    fc.string({ unit: "binary", maxLength: 12_000 }),
    fc.string({ unit: "binary-ascii" }),
    fc.integer(),
    fc.double(),
    fc.constant(null),
    fc.constant(undefined),
    fc.anything({ maxDepth: 3 }),
  );
  fc.assert(
    fc.property(
      fc.record({
        componentName: anything,
        shellType: anything,
        username: anything,
        home: anything,
        hostname: anything,
        platform: anything,
        cwd: anything,
        runtimeVersion: anything,
        pid: anything,
        metadata: anything,
        eventId: fc.string(),
      }),
      (facts) => {
        const event = buildStartEvent(facts);
        validateStartEvent(event);
        // What the wire carries is JSON: it must survive a round trip unchanged.
        validateStartEvent(JSON.parse(JSON.stringify(event)));
      },
    ),
    { numRuns: 10_000 },
  );
});

test("end events built from odd metadata validate", () => {
  fc.assert(
    fc.property(fc.anything({ maxDepth: 3 }), fc.string({ minLength: 1 }), (metadata, sessionId) => {
      validateEndEvent(buildEndEvent({ sessionId, metadata }));
    }),
    { numRuns: 2_000 },
  );
});
