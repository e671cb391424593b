/**
 * Hostile tool arguments, generated with fast-check, that are invalid by
 * construction.
 *
 * Each case starts from arguments the tool accepts, is decorated with
 * hostile content that keeps it valid (unicode controls, SQL metacharacters,
 * prototype-pollution keys, deep nesting, huge strings, in fields that take
 * any value), and then has one to three of its fields broken (wrong type,
 * missing, a pattern or literal violated by an inserted character, out of
 * range, too long, a token that is not a JWT). The case names the broken
 * fields, so a test can check that the answer names one of them.
 */

import fc from "fast-check";
import { isTimestamp } from "../../../src/contract/isotime.ts";
import { TOOL_NAMES, TOOLS } from "../../../src/contract/tools.ts";
import { endPayload, startPayload } from "../../helpers/mcp-client.ts";

export type Args = Record<string, unknown>;

export interface HostileCase {
  args: Args;
  /** Top-level fields that were broken; the answer must name one of them. */
  broken: string[];
  /** Values we sent that an error must not repeat back. */
  secrets: string[];
}

// ---- building blocks ----

const CONTROLS = [
  "\u0000",
  "\u0001",
  "\u0007",
  "\b",
  "\t",
  "\n",
  "\r",
  "\u001b[31m",
  "\u007f",
  "\u0085",
  "\u00a0",
  "\u200b",
  "\u200e",
  "\u202e",
  "\u2028",
  "\u2029",
  "\ufeff",
  "\ufffd",
  "\ud800",
  "\udfff",
  "\u0301",
  "😀",
  "𝔘",
];
const SQL = [
  "'",
  "''",
  "' OR '1'='1",
  "'; DROP TABLE sessions; --",
  '" OR 1=1 --',
  "1; SELECT * FROM events",
  "%",
  "_",
  "\\",
  "/*",
  "*/",
  "--",
  "`",
  "$1",
  "?1",
  ":id",
  "NULL",
  "' UNION SELECT session_id FROM sessions --",
];
export const PROTO_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "__defineGetter__",
  "__lookupSetter__",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "isPrototypeOf",
];
/** Characters no pattern, literal or UUID of the contract allows: one inserted anywhere breaks the value. */
const POISON = ["'", ";", " ", "\u0000", "\u202e", '"', "<", "\n", "😀", "%"];

const fragment = fc.oneof(
  fc.constantFrom(...CONTROLS),
  fc.constantFrom(...SQL),
  fc.constantFrom(...PROTO_KEYS),
  fc.string({ maxLength: 8 }),
  fc.string({ unit: "grapheme", maxLength: 4 }),
);

/** Short strings made of control characters, SQL, prototype keys and random text. */
export const hostileString = fc.array(fragment, { maxLength: 10 }).map((parts) => parts.join(""));

/** Tens of thousands of one hostile unit, bounded so a request stays well under the body limit. */
export const hugeString = fc
  .tuple(
    fc.constantFrom("A", "é", "😀", "\u0000", "'", "\u202e", "𝔘", "\u001b"),
    fc.integer({ min: 1_000, max: 40_000 }),
  )
  .map(([unit, n]) => unit.repeat(n));

export function codePoints(value: string): number {
  return [...value].length;
}

function ownObject(entries: [string, unknown][]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // defineProperty, so a "__proto__" key becomes an own key that JSON.stringify sends, not a prototype change.
  for (const [key, value] of entries)
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  return out;
}

const keyName = fc.oneof(fc.constantFrom(...PROTO_KEYS), hostileString);

/** Nested arrays and objects, hundreds to thousands deep, with prototype keys on the way down. */
export const deepValue = fc
  .tuple(fc.integer({ min: 50, max: 3_000 }), fc.constantFrom(...PROTO_KEYS, "a"), fc.boolean())
  .map(([depth, key, arrays]) => {
    let value: unknown = "bottom";
    for (let i = 0; i < depth; i++) value = arrays && i % 2 === 0 ? [value] : ownObject([[key, value]]);
    return value;
  });

const scalar = fc.oneof(
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  hostileString,
);

/** Any hostile JSON-able value. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: scalar },
  { weight: 1, arbitrary: hugeString },
  { weight: 1, arbitrary: deepValue },
  { weight: 2, arbitrary: fc.array(scalar, { maxLength: 5 }) },
  {
    weight: 2,
    arbitrary: fc.array(fc.tuple(keyName, scalar), { maxLength: 5 }).map(ownObject),
  },
);

const nonString = hostileValue.filter((v) => typeof v !== "string");
const nonObject = hostileValue.filter((v) => v === null || typeof v !== "object" || Array.isArray(v));

/** Any value that is not an integer from `min` to `max` (as JSON sends it: NaN and Infinity become null). */
function notIntegerIn(min: number, max: number): fc.Arbitrary<unknown> {
  return fc
    .oneof(
      hostileValue,
      fc.integer({ min: Number.MIN_SAFE_INTEGER, max: min - 1 }),
      fc.integer({ min: max + 1, max: Number.MAX_SAFE_INTEGER }),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
      fc.integer({ min, max }).map(String),
    )
    .filter((v) => !(typeof v === "number" && Number.isInteger(v) && v >= min && v <= max && !Object.is(v, -0)));
}

/** A string the contract's pattern or literal cannot match: a poison character inserted into a value. */
function poisoned(base: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(base, fc.constantFrom(...POISON), fc.nat()).map(([value, poison, at]) => {
    const i = value.length === 0 ? 0 : at % (value.length + 1);
    return `${value.slice(0, i)}${poison}${value.slice(i)}`;
  });
}

const validish = {
  timestamp: fc.constantFrom(new Date().toISOString(), "2026-01-31T12:00:00Z", "2026-01-31T12:00:00.5+02:00"),
  uuid: fc.uuid({ version: 4 }),
  component: fc.constantFrom("fuzz", "mahavishnu", "a_b-c"),
};

/** A timestamp poisoned so that the contract's rule (Python 3.11's fromisoformat, with a T) refuses it. */
const brokenTimestamp = poisoned(validish.timestamp).filter((v) => !isTimestamp(v));

// ---- mutations ----

interface Mutation {
  field: string;
  apply(args: Args): void;
  /** A value sent that must not come back in an error. */
  secret?: string;
}

function set(field: string, value: unknown): Mutation {
  const secret = typeof value === "string" && value.length >= 16 ? value : undefined;
  return {
    field,
    apply(args) {
      args[field] = value;
    },
    ...(secret !== undefined ? { secret } : {}),
  };
}

function setIn(field: string, key: string, value: unknown): Mutation {
  return {
    field,
    apply(args) {
      const inner = args[field];
      if (inner !== null && typeof inner === "object" && !Array.isArray(inner)) {
        (inner as Args)[key] = value;
      }
    },
  };
}

function remove(field: string): Mutation {
  return {
    field,
    apply(args) {
      delete args[field];
    },
  };
}

const missing = (field: string) => fc.constant(remove(field));
const wrongType = (field: string, values: fc.Arbitrary<unknown> = nonString) => values.map((v) => set(field, v));
/**
 * Session-Buddy takes `null` for `metadata` and `token` (`dict | None`, `str | None`), and both are optional: a
 * value that arrives as null (NaN and Infinity do, in JSON) or not at all (undefined) is no breakage there.
 */
const notNull = (values: fc.Arbitrary<unknown>) =>
  values.filter((v) => {
    const json = JSON.stringify(v);
    return json !== undefined && json !== "null";
  });

/** Breaks the `token` argument: not a string, or a string that is no JWT signed with the tracker's secret. */
const brokenToken = fc.oneof(
  wrongType("token", notNull(nonString)),
  fc
    .oneof(
      hostileString,
      hugeString,
      fc.constantFrom(
        "eyJhbGciOiJub25lIn0.eyJpc3MiOiJmdXp6In0.",
        "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJzZXNzaW9uLWJ1ZGR5In0.c2lnbmF0dXJl",
        "Bearer x",
      ),
    )
    .map((v) => set("token", v)),
);

/**
 * The breakers of an event about a known session (an end, a heartbeat). Its
 * `event_type` is optional, as in Session-Buddy (which defaults it): only a
 * wrong value breaks it.
 */
function sessionEventBreakers(eventType: "session_end" | "heartbeat"): Record<string, fc.Arbitrary<Mutation>> {
  return {
    session_id: fc.oneof(missing("session_id"), wrongType("session_id"), fc.constant(set("session_id", ""))),
    timestamp: fc.oneof(
      missing("timestamp"),
      wrongType("timestamp"),
      brokenTimestamp.map((v) => set("timestamp", v)),
    ),
    event_type: fc.oneof(
      wrongType("event_type"),
      poisoned(fc.constant(eventType)).map((v) => set("event_type", v)),
    ),
    metadata: wrongType("metadata", notNull(nonObject)),
    token: brokenToken,
  };
}

const breakersByTool: Record<string, Record<string, fc.Arbitrary<Mutation>>> = {
  [TOOL_NAMES.start]: {
    event_version: fc.oneof(
      missing("event_version"),
      wrongType("event_version"),
      poisoned(fc.constant("1.0")).map((v) => set("event_version", v)),
    ),
    event_id: fc.oneof(
      missing("event_id"),
      wrongType("event_id"),
      poisoned(validish.uuid).map((v) => set("event_id", v)),
      fc.constantFrom("00000000-0000-1000-8000-000000000000", "not-a-uuid", "").map((v) => set("event_id", v)),
    ),
    event_type: fc.oneof(
      missing("event_type"),
      wrongType("event_type"),
      poisoned(fc.constantFrom("session_start", "session_end")).map((v) => set("event_type", v)),
    ),
    component_name: fc.oneof(
      missing("component_name"),
      wrongType("component_name"),
      fc.constant(set("component_name", "")),
      poisoned(fc.oneof(validish.component, hostileString)).map((v) => set("component_name", v)),
    ),
    shell_type: fc.oneof(missing("shell_type"), wrongType("shell_type")),
    timestamp: fc.oneof(
      missing("timestamp"),
      wrongType("timestamp"),
      brokenTimestamp.map((v) => set("timestamp", v)),
      // Matches the pattern, but the calendar has no such day: the store refuses it.
      fc
        .constantFrom("2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2025-02-29T25:61:61Z")
        .map((v) => set("timestamp", v)),
    ),
    pid: fc.oneof(
      missing("pid"),
      notIntegerIn(1, 4_194_304).map((v) => set("pid", v)),
    ),
    user: fc.oneof(
      missing("user"),
      wrongType("user", nonObject),
      wrongType("user", fc.constant({})),
      fc
        .oneof(nonString, fc.string({ minLength: 101, maxLength: 300 }), hugeString)
        .map((v) => setIn("user", "username", v)),
      fc
        .oneof(nonString, fc.string({ minLength: 501, maxLength: 900 }), hugeString)
        .map((v) => setIn("user", "home", v)),
    ),
    hostname: fc.oneof(missing("hostname"), wrongType("hostname")),
    environment: fc.oneof(
      missing("environment"),
      wrongType("environment", nonObject),
      nonString.map((v) => setIn("environment", "python_version", v)),
      nonString.map((v) => setIn("environment", "platform", v)),
      fc.oneof(nonString, hugeString).map((v) => setIn("environment", "cwd", v)),
    ),
    metadata: wrongType("metadata", notNull(nonObject)),
    token: brokenToken,
  },
  [TOOL_NAMES.end]: sessionEventBreakers("session_end"),
  [TOOL_NAMES.heartbeat]: sessionEventBreakers("heartbeat"),
  [TOOL_NAMES.list]: {
    component_name: fc.oneof(
      wrongType("component_name"),
      fc.constant(set("component_name", "")),
      poisoned(validish.component).map((v) => set("component_name", v)),
    ),
    status: fc.oneof(
      wrongType("status"),
      poisoned(fc.constantFrom("active", "ended", "abandoned")).map((v) => set("status", v)),
      hostileString.filter((s) => !["active", "ended", "abandoned"].includes(s)).map((v) => set("status", v)),
    ),
    hostname: wrongType("hostname"),
    started_after: fc.oneof(
      wrongType("started_after"),
      brokenTimestamp.map((v) => set("started_after", v)),
    ),
    started_before: fc.oneof(
      wrongType("started_before"),
      brokenTimestamp.map((v) => set("started_before", v)),
    ),
    limit: notIntegerIn(1, 500).map((v) => set("limit", v)),
    cursor: wrongType("cursor"),
    token: brokenToken,
  },
  [TOOL_NAMES.get]: {
    session_id: fc.oneof(missing("session_id"), wrongType("session_id"), fc.constant(set("session_id", ""))),
    token: brokenToken,
  },
};

/** Hostile content that keeps the arguments valid. */
function decorations(tool: string, knownFields: string[], sessionIds: string[]): fc.Arbitrary<Mutation>[] {
  const extraKey = keyName.filter((k) => !knownFields.includes(k) && k !== "");
  const out: fc.Arbitrary<Mutation>[] = [fc.tuple(extraKey, hostileValue).map(([k, v]) => set(k, v))];
  if (knownFields.includes("metadata")) {
    out.push(
      fc.array(fc.tuple(keyName, hostileValue), { maxLength: 4 }).map((entries) => set("metadata", ownObject(entries))),
    );
  }
  const anyString = fc.oneof({ weight: 5, arbitrary: hostileString }, { weight: 1, arbitrary: hugeString });
  if (tool === TOOL_NAMES.start) {
    out.push(anyString.map((v) => set("shell_type", v)));
    out.push(anyString.map((v) => set("hostname", v)));
    out.push(hostileString.filter((s) => codePoints(s) <= 100).map((v) => setIn("user", "username", v)));
    out.push(hostileString.filter((s) => codePoints(s) <= 500).map((v) => setIn("environment", "cwd", v)));
    out.push(anyString.map((v) => setIn("environment", "platform", v)));
  }
  if (knownFields.includes("session_id")) {
    const ids = sessionIds.length > 0 ? fc.oneof(fc.constantFrom(...sessionIds), hostileString) : hostileString;
    out.push(ids.filter((s) => s !== "").map((v) => set("session_id", v)));
  }
  if (tool === TOOL_NAMES.list) out.push(anyString.map((v) => set("hostname", v)));
  return out;
}

function validArgs(tool: string, component: string, sessionIds: string[]): Args {
  const sessionId = sessionIds[0] ?? "sess_unknown";
  switch (tool) {
    case TOOL_NAMES.start:
      return startPayload({ component_name: component });
    case TOOL_NAMES.end:
      return endPayload(sessionId);
    case TOOL_NAMES.heartbeat:
      return { session_id: sessionId, timestamp: new Date().toISOString(), event_type: "heartbeat" };
    case TOOL_NAMES.list:
      return { component_name: component, limit: 10 };
    case TOOL_NAMES.get:
      return { session_id: sessionId };
    default:
      throw new Error(`no hostile cases for ${tool}`);
  }
}

/** The top-level fields each tool's contract schema defines. */
function knownFields(tool: string): string[] | undefined {
  const input = (TOOLS as Record<string, { input: unknown }>)[tool]?.input as
    | { shape?: Record<string, unknown> }
    | undefined;
  return input?.shape === undefined ? undefined : Object.keys(input.shape);
}

export const FUZZED_TOOLS = Object.keys(breakersByTool);

/** Bodies past this size would meet the HTTP body limit (1 MiB by default) instead of the tool. */
const MAX_ARGS_BYTES = 900_000;

/**
 * Invalid arguments for `tool`. `component` is the component of the caller's
 * token; `sessionIds` are sessions that exist, used where any id is valid.
 */
export function hostileArgs(tool: string, component: string, sessionIds: string[] = []): fc.Arbitrary<HostileCase> {
  const breakers = breakersByTool[tool];
  const known = knownFields(tool);
  if (!breakers || !known) throw new Error(`no hostile cases for ${tool}`);
  const fields = Object.keys(breakers);
  const breaks = fc
    .uniqueArray(fc.constantFrom(...fields), { minLength: 1, maxLength: 3 })
    .chain((chosen) => fc.tuple(...chosen.map((f) => breakers[f] as fc.Arbitrary<Mutation>)));
  const decorate = fc.array(fc.oneof(...decorations(tool, known, sessionIds)), { maxLength: 3 });
  return fc
    .tuple(decorate, breaks)
    .map(([extras, broken]) => {
      const args = validArgs(tool, component, sessionIds);
      for (const m of extras) m.apply(args);
      for (const m of broken) m.apply(args);
      return {
        args,
        broken: [...new Set(broken.map((m) => m.field))],
        secrets: broken.flatMap((m) => (m.secret !== undefined ? [m.secret] : [])),
      };
    })
    .filter((c) => Buffer.byteLength(JSON.stringify(c.args)) < MAX_ARGS_BYTES);
}

/** Names that are not tools of the tracker. */
export function unknownToolNames(known: readonly string[]): fc.Arbitrary<string> {
  return fc
    .oneof(
      hostileString,
      hugeString.map((s) => s.slice(0, 5_000)),
    )
    .filter((n) => !known.includes(n));
}

/** An object of hostile keys (prototype keys among them) and values. */
export const hostileObject = fc.array(fc.tuple(keyName, hostileValue), { maxLength: 6 }).map(ownObject);
