/**
 * The Session-Buddy compatibility table, executed: for each field, Session-
 * Buddy's rule (admin_shell_tracking_tools.py, event_models.py), ours, and
 * example values each side accepts or refuses, sent over real MCP (HTTP) to
 * a real tracker. Lenient exactly where Session-Buddy is; stricter rows say
 * so. The table is printed with the test output.
 *
 * Where Python 3.11 is installed, the timestamp rule is also checked against
 * `datetime.fromisoformat` itself on a few thousand generated strings.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import fc from "fast-check";
import { checkTimestamp } from "../../src/contract/isotime.ts";
import { type ConnectedClient, connectHttp, endPayload, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";

const START = "track_session_start";
const END = "track_session_end";

interface Row {
  tool: typeof START | typeof END;
  field: string;
  sessionBuddy: string;
  ours: string;
  /** Values both accept (the field is left out for `OMIT`). */
  accepted: unknown[];
  /** Values we refuse, naming the field. */
  refused: unknown[];
}

const OMIT = Symbol("omit");

const TABLE: Row[] = [
  {
    tool: START,
    field: "timestamp",
    sessionBuddy: "str containing 'T' that Python 3.11 datetime.fromisoformat accepts",
    ours: "the same (instants in years 0001-9999 UTC); also at most --max-clock-skew ahead of our clock",
    accepted: [
      "2026-02-06T12:34Z",
      "2026-02-06T12:34:56.789+0000",
      "20260206T123456Z",
      "2026-02-06T12:34:56.123456-05:30",
      "2026-W06-5T12:00",
      "2026-02-06T12",
      "2026-02-06T12:34:56,5+01",
    ],
    refused: [
      "2026-02-06 12:34:56",
      "2026-02-06",
      "2026-02-30T12:00:00Z",
      "2026-02-06T24:00:00",
      "2999-01-01T00:00:00Z",
    ],
  },
  {
    tool: START,
    field: "metadata",
    sessionBuddy: "dict | None = None",
    ours: "the same: null is the same as leaving it out",
    accepted: [null, OMIT, {}, { component_version: "1.2.3" }],
    refused: ["not an object", ["an", "array"], 42],
  },
  {
    tool: START,
    field: "token",
    sessionBuddy: "str | None = None",
    ours: "the same; a string must be a valid JWT for the component (the Authorization header may carry it)",
    accepted: [null, OMIT],
    refused: [12, "not-a-jwt"],
  },
  {
    tool: START,
    field: "event_id",
    sessionBuddy: "UUID version 4",
    ours: "the same, in every form Python's uuid.UUID reads",
    accepted: ["0F8FAD5B-D9CB-469F-A165-70867728950E", "{0f8fad5b-d9cb-469f-a165-70867728950f}"],
    refused: ["not-a-uuid", "c232ab00-9414-11ec-b3c8-9f6bdeced846"],
  },
  {
    tool: START,
    field: "event_type",
    sessionBuddy: 'Literal["session_start"]',
    ours: "the same",
    accepted: ["session_start"],
    refused: ["session_end", OMIT],
  },
  {
    tool: END,
    field: "event_type",
    sessionBuddy: 'str = "session_end"',
    ours: 'optional, default "session_end"; stricter: any other value is refused',
    accepted: [OMIT, "session_end"],
    refused: ["session_start", "heartbeat"],
  },
  {
    tool: END,
    field: "metadata",
    sessionBuddy: "dict | None = None",
    ours: "the same",
    accepted: [null, OMIT, { exit_reason: "eof" }],
    refused: ["exit", [1]],
  },
  {
    tool: END,
    field: "token",
    sessionBuddy: "str | None = None",
    ours: "the same; a string must be a valid JWT",
    accepted: [null, OMIT],
    refused: [false, "not-a-jwt"],
  },
  {
    tool: END,
    field: "timestamp",
    sessionBuddy: "as for track_session_start",
    ours: "as for track_session_start; an end before its start is recorded with ended_at = started_at (flagged)",
    accepted: ["2026-02-06T12:34Z", "20260206T123456Z"],
    refused: ["2026-02-06", "yesterday"],
  },
];

function show(value: unknown): string {
  return value === OMIT ? "(left out)" : JSON.stringify(value);
}

function markdown(): string {
  const lines = ["| tool | field | Session-Buddy | ours | accepted | refused |", "|---|---|---|---|---|---|"];
  for (const row of TABLE) {
    lines.push(
      `| ${row.tool} | ${row.field} | ${row.sessionBuddy} | ${row.ours} | ${row.accepted.map(show).join(", ")} | ${row.refused.map(show).join(", ")} |`,
    );
  }
  lines.push("| (any) | tool name | MCP spec: unknown tool is a JSON-RPC error | -32602 Invalid params | | |");
  return lines.join("\n");
}

function withField(payload: Record<string, unknown>, field: string, value: unknown): Record<string, unknown> {
  const copy = { ...payload };
  if (value === OMIT) delete copy[field];
  else copy[field] = value;
  return copy;
}

describe("Session-Buddy compatibility table", () => {
  let tracker: TrackerProcess;
  let client: ConnectedClient;

  before(async () => {
    tracker = await startTracker();
    client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
  });
  after(async () => {
    await client?.close();
    await tracker?.stop();
  });

  async function sessionId(): Promise<string> {
    const r = await client.call(START, startPayload());
    return String(r.result.session_id);
  }

  async function call(row: Row, value: unknown) {
    // Every payload gets its own fresh session and event id, so each value is judged on its own.
    const base = row.tool === START ? startPayload() : endPayload(await sessionId());
    return (await client.call(row.tool, withField(base, row.field, value))).result;
  }

  for (const row of TABLE) {
    test(`${row.tool} ${row.field}: ${row.sessionBuddy}`, async () => {
      for (const value of row.accepted) {
        const result = await call(row, value);
        assert.equal(
          result.status,
          row.tool === START ? "tracked" : "ended",
          `${show(value)}: ${JSON.stringify(result)}`,
        );
      }
      for (const value of row.refused) {
        const result = await call(row, value);
        assert.equal(result.status, "error", show(value));
        const named = (result.issues as { field: string }[] | undefined)?.some((i) => i.field === row.field);
        assert.ok(named, `${show(value)} should be refused naming ${row.field}: ${JSON.stringify(result)}`);
      }
    });
  }

  test("an unknown tool name is a JSON-RPC error -32602, as the MCP spec has it", async () => {
    await assert.rejects(client.call("track_session_pause", {}), (error: unknown) => {
      assert.ok(error instanceof McpError);
      assert.equal(error.code, -32602);
      return true;
    });
  });

  test("the table", (t) => {
    t.diagnostic(`\n${markdown()}`);
    console.log(markdown());
    assert.equal(TABLE.length, 9);
  });
});

function python311(): string | undefined {
  for (const candidate of ["python3.11", "python3"]) {
    try {
      const version = execFileSync(candidate, ["-c", "import sys; print(sys.version_info[:2] == (3, 11))"], {
        encoding: "utf8",
      });
      if (version.trim() === "True") return candidate;
    } catch {
      // not installed
    }
  }
  return undefined;
}

test("the timestamp rule agrees with Python 3.11's datetime.fromisoformat on generated strings", (t) => {
  const python = python311();
  if (python === undefined) {
    t.skip("Python 3.11 is not installed");
    return;
  }
  const date = fc.constantFrom(
    "2026-02-06",
    "20260206",
    "2026-W06",
    "2026W065",
    "2026-W53-1",
    "2024-02-29",
    "2023-02-29",
    "2026-0206",
  );
  const separator = fc.constantFrom("T", "T", " ", "t");
  const time = fc.constantFrom(
    "12",
    "12:34",
    "12:34:56",
    "1234",
    "123456",
    "12:34:56.789",
    "12:34:56,5",
    "12:3",
    "24:00",
    "12.5",
  );
  const zone = fc.constantFrom("", "Z", "+00:00", "+0000", "+05", "-05:30:15", "+24:00", "+1", "Zx", "+00:99");
  const mutate = fc.option(fc.tuple(fc.nat(30), fc.constantFrom(..."0123456789T:-+Z.,W ")), { freq: 3 });
  const strings = fc.sample(
    fc.tuple(date, separator, time, zone, mutate).map(([d, sep, tm, z, m]) => {
      const s = `${d}${sep}${tm}${z}`;
      if (m === null) return s;
      const i = m[0] % s.length;
      return `${s.slice(0, i)}${m[1]}${s.slice(i + 1)}`;
    }),
    { numRuns: 4000, seed: 42 },
  );
  const script =
    "import sys, json, datetime\n" +
    "out = []\n" +
    "for s in json.load(sys.stdin):\n" +
    "  try:\n" +
    "    datetime.datetime.fromisoformat(s); out.append('T' in s)\n" +
    "  except Exception:\n" +
    "    out.append(False)\n" +
    "print(json.dumps(out))\n";
  const verdicts = JSON.parse(
    execFileSync(python, ["-c", script], { input: JSON.stringify(strings), encoding: "utf8" }),
  );
  let accepted = 0;
  for (const [i, s] of strings.entries()) {
    const ours = checkTimestamp(s).ok;
    // The one deliberate difference: instants before 0001-01-01 UTC (none are generated here).
    assert.equal(ours, verdicts[i], `${JSON.stringify(s)}: Python ${verdicts[i]}, ours ${ours}`);
    if (ours) accepted++;
  }
  t.diagnostic(`${strings.length} strings, ${accepted} accepted by both`);
  assert.ok(accepted > 20, "the generator reaches valid timestamps");
});
