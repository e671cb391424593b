/**
 * CommonJS and ES module hosts, with `--import otel-shell-sessions/register`
 * and with the programmatic set-up: all four produce the session span, for
 * every way a program can make its REPL. And the text of inputs never leaves
 * the process unless input capture is switched on.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { readSpanFile } from "../fixtures/file-span-exporter.ts";
import type { ReceivedSpan } from "../helpers/otlp-receiver.ts";
import { spawnPty } from "../helpers/pty.ts";
import { bannerOf, FIXTURES, isSessionSpan, openTrackedShell, REGISTER, shellTestbed } from "./shell-testbed.ts";

const bed = shellTestbed("shell-hosts-");

interface Case {
  host: "repl-host.cjs" | "repl-host.mjs";
  setup: "register" | "programmatic";
  create: "start" | "new";
  module?: "repl" | "node:repl";
}

const CASES: Case[] = [
  { host: "repl-host.cjs", setup: "register", create: "new", module: "repl" },
  { host: "repl-host.cjs", setup: "register", create: "start", module: "node:repl" },
  { host: "repl-host.mjs", setup: "register", create: "start" },
  { host: "repl-host.mjs", setup: "register", create: "new" },
  { host: "repl-host.cjs", setup: "programmatic", create: "start", module: "node:repl" },
  { host: "repl-host.cjs", setup: "programmatic", create: "new", module: "repl" },
  { host: "repl-host.mjs", setup: "programmatic", create: "new" },
  { host: "repl-host.mjs", setup: "programmatic", create: "start" },
];

describe("CommonJS and ES module hosts, --import and programmatic set-up", () => {
  let n = 0;
  for (const c of CASES) {
    const how = c.create === "new" ? "new REPLServer()" : "repl.start()";
    const from = c.module ? `require("${c.module}")` : 'import from "node:repl"';
    test(`${c.host}, ${c.setup}: ${how} via ${from}`, async (t) => {
      const spanFile = join(bed.work, `spans-${++n}.jsonl`);
      const fixture = { FIXTURE_CREATE: c.create, ...(c.module ? { FIXTURE_MODULE: c.module } : {}) };
      const env =
        c.setup === "register"
          ? bed.env(fixture)
          : bed.baseEnv({
              ...fixture,
              FIXTURE_TELEMETRY: "programmatic",
              SPAN_FILE: spanFile,
              OTEL_TRACES_EXPORTER: "none",
            });
      const args = c.setup === "register" ? ["--import", REGISTER, c.host] : [c.host];
      const { shell, sessionId, traceId } = await openTrackedShell(t, args, { prompt: "host> ", cwd: FIXTURES, env });
      shell.type("inventory.widgets * 2");
      await shell.waitFor(/^6$/m);
      shell.type(".exit");
      assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });

      const spans =
        c.setup === "register"
          ? await bed.receiver.waitForSpans(isSessionSpan(sessionId))
          : readSpanFile(spanFile).filter(isSessionSpan(sessionId));
      assert.equal(spans.length, 1);
      const [span] = spans as [(typeof spans)[number]];
      assert.equal(span.name, "shell.session");
      assert.equal(span.traceId, traceId);
      assert.equal(span.attributes["shell.exit.reason"], "exit_command");
      assert.equal(span.attributes["shell.eval.count"], 1);
      if (c.setup === "programmatic") {
        const component = c.host.endsWith(".cjs") ? "fixture-cjs" : "fixture-esm";
        assert.equal(span.attributes["shell.component.name"], component);
        assert.equal(span.attributes["shell.type"], "FixtureShell");
        assert.equal(span.attributes["shell.component.version"], "1.0.0");
        assert.deepEqual(span.attributes["shell.adapters"], ["memory"]);
      } else {
        assert.equal(span.attributes["shell.type"], "REPLServer");
      }
    });
  }
});

test("--import register and a programmatic start in one program make one SDK with both set-ups", async (t) => {
  const spanFile = join(bed.work, "spans-both.jsonl");
  const { shell, sessionId } = await openTrackedShell(t, ["--import", REGISTER, "repl-host.cjs"], {
    prompt: "host> ",
    cwd: FIXTURES,
    env: bed.env({ FIXTURE_TELEMETRY: "programmatic", SPAN_FILE: spanFile }),
  });
  shell.type(".exit");
  assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
  const isMine = isSessionSpan(sessionId);
  const viaOtlp = await bed.receiver.waitForSpans(isMine);
  const viaFile = readSpanFile(spanFile).filter(isMine);
  assert.equal(viaOtlp.length, 1, "the environment's exporter got the span once");
  assert.equal(viaFile.length, 1, "the program's own span processor got it once");
  assert.equal(viaOtlp[0]?.spanId, viaFile[0]?.spanId, "one span, from one SDK");
  assert.equal(viaFile[0]?.attributes["shell.component.name"], "fixture-cjs");
});

describe("input text", () => {
  const MARKER = "zebraQuartz7781";
  /** All of the spans as text (timestamps are bigints, which JSON cannot hold). */
  const asText = (spans: ReceivedSpan[]) =>
    JSON.stringify(spans, (_key, value: unknown) => (typeof value === "bigint" ? String(value) : value));

  async function sessionWithEvalSpans(capture: boolean): Promise<ReceivedSpan[]> {
    const shell = spawnPty(["--import", REGISTER, "repl-host.cjs"], {
      cwd: FIXTURES,
      env: bed.env({
        SHELL_SESSIONS_EVAL_SPANS: "on",
        SHELL_SESSIONS_CAPTURE_INPUT: capture ? "on" : "off",
      }),
    });
    try {
      await shell.waitFor("host> ");
      const { traceId } = await bannerOf(shell);
      shell.type(`const ${MARKER} = { password: "correct-horse-battery" }`);
      await shell.waitFor(/^undefined$/m);
      shell.type(`${MARKER}.missing.field`);
      await shell.waitFor(/TypeError/);
      shell.type(".exit");
      assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
      // The session and two inputs.
      return await bed.receiver.waitForSpans((s) => s.traceId === traceId, 3);
    } finally {
      shell.dispose();
    }
  }

  test("is in no span when input capture is off, even with per-input spans on", async () => {
    const spans = await sessionWithEvalSpans(false);
    assert.deepEqual(spans.map((s) => s.name).sort(), ["shell.eval", "shell.eval", "shell.session"]);
    assert.doesNotMatch(asText(spans), new RegExp(`${MARKER}|correct-horse`));
    const failed = spans.find((s) => s.name === "shell.eval" && s.status.code === 2);
    assert.equal(failed?.attributes["error.type"], "TypeError");
  });

  test("is recorded, with secrets masked, when input capture is on", async () => {
    const spans = await sessionWithEvalSpans(true);
    const inputs = spans.filter((s) => s.name === "shell.eval").map((s) => s.attributes["shell.eval.input"]);
    assert.ok(inputs.includes(`const ${MARKER} = { password: "[REDACTED]" }`), JSON.stringify(inputs));
    assert.doesNotMatch(asText(spans), /correct-horse/);
  });
});
