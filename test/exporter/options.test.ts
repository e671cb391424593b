import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { splitCommandLine } from "../../src/exporter/command-line.ts";
import { DEFAULT_URL, DEFAULTS, resolveDeliveryOptions } from "../../src/exporter/options.ts";
import { createLogger } from "../../src/log.ts";

test("defaults: HTTP to the real Session-Buddy's address, spool in the state dir", () => {
  const r = resolveDeliveryOptions({ SHELL_SESSIONS_STATE_DIR: "/tmp/state-x" });
  assert.ok(r.enabled);
  assert.deepEqual(r.problems, []);
  assert.equal(r.options.transport.kind, "http");
  assert.equal(r.options.transport.kind === "http" && r.options.transport.url.href, DEFAULT_URL);
  assert.equal(r.options.spoolPath, join("/tmp/state-x", "spool.db"));
  assert.equal(r.options.breakerFailures, 3);
  assert.equal(r.options.callTimeoutMs, DEFAULTS.callTimeoutMs);
  assert.ok(r.options.heartbeatMs < 300_000, "heartbeats well under the tracker's default lease");
});

test("SHELL_SESSIONS_DELIVERY=off switches delivery off; SESSION_BUDDY_COMMAND selects stdio", () => {
  for (const off of ["off", "OFF", "0", "false", "no"]) {
    assert.equal(resolveDeliveryOptions({ SHELL_SESSIONS_DELIVERY: off }).enabled, false);
  }
  const r = resolveDeliveryOptions({
    SESSION_BUDDY_COMMAND: "shell-sessions serve --stdio",
    SESSION_BUDDY_URL: "http://x/mcp",
  });
  assert.ok(r.enabled);
  assert.deepEqual(r.options.transport, { kind: "stdio", command: "shell-sessions", args: ["serve", "--stdio"] });
});

test("an override given in code is held to the variable's range: a bad one is named and ignored", () => {
  const r = resolveDeliveryOptions(
    { SHELL_SESSIONS_BREAKER_FAILURES: "7" },
    { breakerFailures: 0, queueMax: 2.5, callTimeoutMs: 250, exitGraceMs: 10 },
  );
  assert.ok(r.enabled);
  assert.equal(r.options.breakerFailures, 7, "the variable's value stands where the override is bad");
  assert.equal(r.options.queueMax, DEFAULTS.queueMax);
  assert.equal(r.options.callTimeoutMs, 250, "a good override applies");
  assert.equal(r.options.exitGraceMs, 10);
  assert.deepEqual(
    r.problems.map((p) => p.message),
    [
      "option breakerFailures must be a whole number from 1 to 100; ignored",
      "option queueMax must be a whole number from 1 to 1000000; ignored",
    ],
  );
});

test("a bad number names the variable and the fix, and falls back to the default", () => {
  const r = resolveDeliveryOptions({ SHELL_SESSIONS_CALL_TIMEOUT_MS: "soon", SHELL_SESSIONS_BREAKER_FAILURES: "0" });
  assert.ok(r.enabled);
  assert.equal(r.options.callTimeoutMs, DEFAULTS.callTimeoutMs);
  assert.equal(r.options.breakerFailures, DEFAULTS.breakerFailures);
  assert.equal(r.problems.length, 2);
  assert.match(
    r.problems[0]?.message ?? "",
    /SHELL_SESSIONS_CALL_TIMEOUT_MS must be a whole number from 100 to 300000; using 5000/,
  );
  assert.match(r.problems[1]?.message ?? "", /SHELL_SESSIONS_BREAKER_FAILURES must be a whole number from 1 to 100/);
});

test("an unusable URL or command turns delivery off with a message naming the variable; credentials in a URL are refused", () => {
  const bad = resolveDeliveryOptions({ SESSION_BUDDY_URL: "ftp://host/mcp" });
  assert.equal(bad.enabled, false);
  assert.match(
    bad.problems[0]?.message ?? "",
    /SESSION_BUDDY_URL must be an http\(s\) URL such as http:\/\/127\.0\.0\.1:8678\/mcp/,
  );
  const creds = resolveDeliveryOptions({ SESSION_BUDDY_URL: "http://user:hunter2@host/mcp" });
  assert.equal(creds.enabled, false);
  assert.doesNotMatch(creds.problems[0]?.message ?? "", /hunter2/);
  assert.match(creds.problems[0]?.message ?? "", /SESSION_BUDDY_TOKEN/);
  const unclosed = resolveDeliveryOptions({ SESSION_BUDDY_COMMAND: "node 'server.js" });
  assert.equal(unclosed.enabled, false);
  assert.match(unclosed.problems[0]?.message ?? "", /SESSION_BUDDY_COMMAND has an unclosed ' quote/);
});

test("commands are split into words without a shell: quotes are understood, nothing is expanded", () => {
  const v = "SESSION_BUDDY_COMMAND";
  assert.deepEqual(splitCommandLine(`node "/opt/my app/serve.js" --stdio`, v), [
    "node",
    "/opt/my app/serve.js",
    "--stdio",
  ]);
  assert.deepEqual(splitCommandLine(`a 'b c' d\\ e "f \\"g\\""`, v), ["a", "b c", "d e", 'f "g"']);
  assert.deepEqual(splitCommandLine("echo $HOME `id` ; rm -rf / | x", v), [
    "echo",
    "$HOME",
    "`id`",
    ";",
    "rm",
    "-rf",
    "/",
    "|",
    "x",
  ]);
  assert.deepEqual(splitCommandLine('["node", "a b.js", "--stdio"]', v), ["node", "a b.js", "--stdio"]);
  assert.deepEqual(splitCommandLine("a '' b", v), ["a", "", "b"]);
  assert.throws(
    () => splitCommandLine('["node", 3]', v),
    /SESSION_BUDDY_COMMAND as JSON must be a non-empty array of non-empty strings/,
  );
});

test("the logger filters by level, writes one line per message, and warns once per key", () => {
  const lines: string[] = [];
  const log = createLogger("warn", (l) => lines.push(l));
  log.debug("hidden");
  log.info("hidden");
  log.warn("first\nsecond");
  log.warnOnce("k", "once");
  log.warnOnce("k", "once again");
  assert.deepEqual(lines, ["shell-sessions: warn: first second\n", "shell-sessions: warn: once\n"]);
  const silent: string[] = [];
  createLogger("silent", (l) => silent.push(l)).error("x");
  assert.deepEqual(silent, []);
});
