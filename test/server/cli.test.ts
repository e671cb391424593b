/**
 * `shell-sessions token`, `list`, `show` and every `--help`, as a user runs
 * them: real processes, a real store written by a real tracker.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { verifyToken } from "../../src/auth/jwt.ts";
import { SEMI_SPACE_FLAG, youngGenerationChosen } from "../../src/cli/young-generation.ts";
import { SessionStartResult } from "../../src/contract/schemas.ts";
import { connectHttp, endPayload, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { randomSecret, runCli, startTracker, type TrackerProcess } from "../helpers/tracker.ts";

describe("shell-sessions token", () => {
  const secret = randomSecret();

  test("prints only the token, for the component, with the TTL and scopes asked for", async () => {
    const result = await runCli(["token", "--component", "mahavishnu", "--ttl", "90m", "--scopes", "sessions:write"], {
      SESSION_BUDDY_SECRET: secret,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const verified = await verifyToken(result.stdout.trim(), secret);
    assert.equal(verified.component, "mahavishnu");
    assert.equal(verified.expiresAt - verified.issuedAt, 90 * 60);
    assert.deepEqual(verified.scopes, ["sessions:write"]);
  });

  test("--ttl takes seconds or s/m/h/d and defaults to 24h", async () => {
    for (const [ttl, seconds] of [
      ["3600", 3600],
      ["24h", 86_400],
      ["7d", 604_800],
      [undefined, 86_400],
    ] as const) {
      const args = ["token", "--component", "oneiric", ...(ttl ? ["--ttl", ttl] : [])];
      const result = await runCli(args, { SESSION_BUDDY_SECRET: secret });
      assert.equal(result.code, 0, result.stderr);
      const verified = await verifyToken(result.stdout.trim(), secret);
      assert.equal(verified.expiresAt - verified.issuedAt, seconds, String(ttl));
      assert.equal(verified.scopes, undefined);
    }
  });

  test("bad usage exits 2 naming the flag; no secret exits 1 saying where one would be", async () => {
    for (const [args, pattern] of [
      [[], /--component is required/],
      [["--component", "bad name"], /--component must match/],
      [["--component", "x", "--ttl", "0"], /--ttl must be a positive duration/],
      [["--component", "x", "--ttl", "5y"], /--ttl must be a positive duration/],
      [["--component", "x", "--scopes", "admin"], /--scopes takes/],
    ] as const) {
      const result = await runCli(["token", ...args], { SESSION_BUDDY_SECRET: secret });
      assert.equal(result.code, 2, args.join(" "));
      assert.match(result.stderr, pattern);
      assert.equal(result.stdout, "");
    }
    const stateDir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-nosecret-"));
    try {
      const result = await runCli(["token", "--component", "x"], { SHELL_SESSIONS_STATE_DIR: stateDir });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /no secret found\. Set SESSION_BUDDY_SECRET/);
      assert.ok(result.stderr.includes(join(stateDir, "secret")));
      assert.equal(result.stdout, "");
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
    const short = await runCli(["token", "--component", "x"], { SESSION_BUDDY_SECRET: "short" });
    assert.equal(short.code, 1);
    assert.match(short.stderr, /at least 32/);
  });
});

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const LOCAL_ID = "235a96f4-1c2d-4e5f-8a9b-0c1d2e3f4a5b";

describe("shell-sessions list and show", () => {
  let tracker: TrackerProcess;
  let activeId: string;
  let endedId: string;
  let env: Record<string, string>;

  before(async () => {
    tracker = await startTracker();
    env = { SHELL_SESSIONS_STATE_DIR: tracker.stateDir };
    const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
    const started = new Date(Date.now() - 3_725_000);
    activeId = SessionStartResult.parse(
      (
        await client.call(
          "track_session_start",
          startPayload({ hostname: "web-01", metadata: { trace_id: TRACE_ID, local_session_id: LOCAL_ID } }),
        )
      ).result,
    ).session_id as string;
    endedId = SessionStartResult.parse(
      (
        await client.call(
          "track_session_start",
          startPayload({
            hostname: "web-02\u001b[31m",
            timestamp: started.toISOString(),
            user: { username: "alice", home: "/home/alice" },
          }),
        )
      ).result,
    ).session_id as string;
    await client.call(
      "track_session_end",
      endPayload(endedId, {
        timestamp: new Date(started.getTime() + 3_723_000).toISOString(),
        metadata: { exit_reason: "sigterm" },
      }),
    );
    await client.close();
  });
  after(async () => {
    await tracker?.stop();
  });

  test("show and list --id take the tracker id, the trace id and the shell's local session id", async () => {
    for (const id of [activeId, TRACE_ID, TRACE_ID.toUpperCase(), LOCAL_ID]) {
      const shown = await runCli(["show", id, "--json"], env);
      assert.equal(shown.code, 0, shown.stderr);
      assert.equal(JSON.parse(shown.stdout).session_id, activeId, id);
      const listed = await runCli(["list", "--json", "--id", id], env);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(
        (JSON.parse(listed.stdout) as { session_id: string }[]).map((s) => s.session_id),
        [activeId],
      );
    }
    const missing = await runCli(["show", "0".repeat(32)], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no session with id "0{32}" .*\(tracker, trace or shell session id\)/);
  });

  test("list prints a readable table of every session (the default store is the state dir's)", async () => {
    const result = await runCli(["list"], env);
    assert.equal(result.code, 0, result.stderr);
    const [header, ...rows] = result.stdout.trimEnd().split("\n");
    assert.match(header ?? "", /^SESSION\s+COMPONENT\s+HOST\s+USER\s+STATUS\s+STARTED\s+DURATION\s+EXIT$/);
    assert.equal(rows.length, 2);
    const ended = rows.find((r) => r.startsWith(endedId)) ?? "";
    assert.match(
      ended,
      /mahavishnu\s+web-02 \[31m\s+alice\s+ended\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+1h02m03s\s+sigterm$/,
    );
    assert.ok(!result.stdout.includes("\u001b"), "no escape sequence from session data reaches the terminal");
    const active = rows.find((r) => r.startsWith(activeId)) ?? "";
    assert.match(active, /\sactive\s/);
  });

  test("list filters by --active, --status, --component and --host, and --json gives every field", async () => {
    const ids = async (args: string[]) => {
      const result = await runCli(["list", "--json", ...args], env);
      assert.equal(result.code, 0, result.stderr);
      return (JSON.parse(result.stdout) as { session_id: string }[]).map((s) => s.session_id);
    };
    assert.deepEqual(await ids(["--active"]), [activeId]);
    assert.deepEqual(await ids(["--status", "ended"]), [endedId]);
    assert.deepEqual(await ids(["--host", "web-01"]), [activeId]);
    assert.deepEqual(await ids(["--component", "oneiric"]), []);
    const all = await runCli(["list", "--json", "--limit", "1"], env);
    const parsed = JSON.parse(all.stdout) as Record<string, unknown>[];
    assert.equal(parsed.length, 1);
    assert.ok("start_event_id" in (parsed[0] ?? {}));

    const contradiction = await runCli(["list", "--active", "--status", "ended"], env);
    assert.equal(contradiction.code, 2);
    assert.match(contradiction.stderr, /--active contradicts --status/);
    const badStatus = await runCli(["list", "--status", "gone"], env);
    assert.equal(badStatus.code, 2);
    const empty = await runCli(["list", "--component", "nobody"], env);
    assert.match(empty.stdout, /^no sessions in /);
  });

  test("show prints every field; --json gives the record; an unknown id exits 1", async () => {
    const shown = await runCli(["show", endedId], env);
    assert.equal(shown.code, 0, shown.stderr);
    for (const pattern of [
      new RegExp(`^session_id\\s+${endedId}$`, "m"),
      /^status\s+ended$/m,
      /^user\s+alice$/m,
      /^duration\s+1h02m03s$/m,
      /^exit_reason\s+sigterm$/m,
      /^start_event_id\s+[0-9a-f-]{36}$/m,
      /^metadata\s+\{/m,
    ]) {
      assert.match(shown.stdout, pattern);
    }
    const json = await runCli(["show", endedId, "--json"], env);
    assert.equal((JSON.parse(json.stdout) as { duration_seconds: number }).duration_seconds, 3723);
    const unknown = await runCli(["show", "sess_nosuchsession"], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no session with id "sess_nosuchsession"/);
    const noId = await runCli(["show"], env);
    assert.equal(noId.code, 2);
  });

  test("a store spec that cannot work is refused clearly, without echoing a password", async () => {
    const result = await runCli(["list", "--store", "mysql://root:hunter2@db/x"], env);
    assert.equal(result.code, 2, "a bad flag is misuse: exit 2 with usage");
    assert.match(result.stderr, /--store: unsupported scheme "mysql:"/);
    assert.ok(!result.stderr.includes("hunter2"));
  });
});

describe("serve's young generation bound", () => {
  /** The node flags of a running process, from its command line. */
  function nodeFlags(pid: number): string[] {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.slice(
      1,
      argv.findIndex((arg) => arg.endsWith("main.js") || arg.endsWith("main.ts")),
    );
  }

  test("over HTTP the server runs under the flag, in the process its parent started", async (t) => {
    const tracker = await startTracker();
    t.after(() => tracker.stop());
    // startTracker saw "listening" from the pid it spawned: the replaced process kept it.
    assert.deepEqual(nodeFlags(tracker.pid), [SEMI_SPACE_FLAG]);
    const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
    t.after(() => client.close());
    const started = SessionStartResult.parse((await client.call("track_session_start", startPayload())).result);
    assert.equal(started.status, "tracked");
  });

  test("a size the user chose in NODE_OPTIONS is kept", async (t) => {
    const tracker = await startTracker({ env: { NODE_OPTIONS: "--max-semi-space-size=8" } });
    t.after(() => tracker.stop());
    assert.deepEqual(nodeFlags(tracker.pid), []);
  });

  test("which flags count as a choice", () => {
    assert.equal(youngGenerationChosen([], undefined), false);
    assert.equal(youngGenerationChosen(["--max-old-space-size=512"], "--enable-source-maps"), false);
    assert.equal(youngGenerationChosen(["--max_semi_space_size=4"], undefined), true);
    assert.equal(youngGenerationChosen([], "--inspect --max-semi-space-size=32"), true);
    assert.equal(youngGenerationChosen([], "--max-young-generation-size=48"), true);
  });
});

test("every command's --help shows its flags, defaults, environment and an example", async () => {
  const expectations: Record<string, RegExp[]> = {
    serve: [
      /--host HOST/,
      /default 127\.0\.0\.1/,
      /--port PORT/,
      /8678/,
      /--stdio/,
      /--store SPEC/,
      /--lease SECONDS/,
      /--allow-origin/,
      /--max-body/,
      /--insecure-no-auth/,
      /SESSION_BUDDY_SECRET/,
      /SESSION_BUDDY_TOKEN/,
      /OTEL_METRICS_EXPORTER=prometheus/,
      /Examples:/,
    ],
    token: [
      /--component NAME/,
      /--ttl DURATION/,
      /Default 24h/,
      /--scopes/,
      /export SESSION_BUDDY_TOKEN=/,
      /Examples:/,
    ],
    list: [/--active/, /--component/, /--status/, /--host/, /--limit/, /--store/, /--json/, /--lease/, /Examples:/],
    show: [/show ID/, /trace id/, /--json/, /--store/, /Examples:/],
  };
  for (const [command, patterns] of Object.entries(expectations)) {
    const result = await runCli([command, "--help"]);
    assert.equal(result.code, 0, command);
    for (const pattern of patterns) assert.match(result.stdout, pattern, `${command} --help: ${pattern}`);
  }
});
