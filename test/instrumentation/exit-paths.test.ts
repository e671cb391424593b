/**
 * Every way out of a real shell, driven through a real PTY: each ends
 * exactly one `shell.session` span with the right exit reason, and the
 * program exits exactly as it would without the instrumentation.
 *
 * The host is test/fixtures/repl-host.cjs under
 * `--import otel-shell-sessions/register`, after a preload that registers a
 * tracer provider writing spans synchronously to a file (so spans ended in
 * the process `exit` event are seen too).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, type TestContext, test } from "node:test";
import { readSpanFile, type SpanRecord } from "../fixtures/file-span-exporter.ts";
import { KEY, type PtyExit, type PtyShell, spawnPty } from "../helpers/pty.ts";
import { bannerOf, FIXTURES, REGISTER } from "./shell-testbed.ts";

const work = mkdtempSync(join(tmpdir(), "shell-exit-paths-"));
after(() => rmSync(work, { recursive: true, force: true }));

let n = 0;

interface Run {
  shell: PtyShell;
  spanFile: string;
  sessionId: string;
}

/** Opens the host under `t` (which disposes of it), and waits for its prompt and, if instrumented, its banner. */
async function openHost(t: TestContext, instrumented = true, extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  const spanFile = join(work, `spans-${++n}.jsonl`);
  const args = instrumented
    ? ["--import", join(FIXTURES, "file-provider.ts"), "--import", REGISTER, join(FIXTURES, "repl-host.cjs")]
    : [join(FIXTURES, "repl-host.cjs")];
  const shell = spawnPty(args, {
    cwd: FIXTURES,
    env: { SPAN_FILE: spanFile, SHELL_SESSIONS_DELIVERY: "off", SHELL_SESSIONS_STATE_DIR: work, ...extraEnv },
  });
  t.after(() => shell.dispose());
  await shell.waitFor("host> ");
  const sessionId = instrumented ? (await bannerOf(shell)).sessionId : "";
  if (instrumented && extraEnv.SHELL_SESSIONS_DELIVERY === undefined) {
    assert.match(shell.output, /session traced, not tracked \(delivery off\)/, "the banner claims no tracking");
  }
  return { shell, spanFile, sessionId };
}

function sessionSpans(run: Run): SpanRecord[] {
  return readSpanFile(run.spanFile).filter((s) => s.name === "shell.session");
}

async function endsWith(run: Run, expected: PtyExit, reason: string): Promise<void> {
  const exit = await run.shell.waitForExit();
  assert.deepEqual(exit, expected, run.shell.output);
  const spans = sessionSpans(run);
  assert.equal(spans.length, 1, `exactly one session span:\n${JSON.stringify(spans, null, 1)}`);
  const [span] = spans as [SpanRecord];
  assert.equal(span.attributes["session.id"], run.sessionId);
  assert.equal(span.attributes["shell.exit.reason"], reason);
  assert.ok(span.endTimeMs >= span.startTimeMs);
}

describe("each of the seven ways out ends exactly one span with its reason", () => {
  test(".exit", async (t) => {
    const run = await openHost(t);
    run.shell.type("inventory.widgets");
    await run.shell.waitFor(/^3$/m);
    run.shell.type(".exit");
    await endsWith(run, { exitCode: 0, signal: 0 }, "exit_command");
    assert.equal(sessionSpans(run)[0]?.attributes["shell.eval.count"], 1);
  });

  test("Ctrl-D", async (t) => {
    const run = await openHost(t);
    run.shell.write(KEY.ctrlD);
    await endsWith(run, { exitCode: 0, signal: 0 }, "eof");
  });

  test("Ctrl-C twice", async (t) => {
    const run = await openHost(t);
    const mark = run.shell.mark();
    run.shell.write(KEY.ctrlC);
    await run.shell.waitFor(/To exit, press Ctrl\+C again/, { since: mark });
    run.shell.write(KEY.ctrlC);
    await endsWith(run, { exitCode: 0, signal: 0 }, "sigint");
  });

  test("process.exit() typed in the shell", async (t) => {
    const run = await openHost(t);
    run.shell.type("process.exit(3)");
    await endsWith(run, { exitCode: 3, signal: 0 }, "process_exit");
  });

  test("SIGTERM", async (t) => {
    const run = await openHost(t);
    run.shell.kill("SIGTERM");
    await endsWith(run, { exitCode: 0, signal: 15 }, "sigterm");
  });

  test("SIGHUP (the terminal went away)", async (t) => {
    const run = await openHost(t);
    run.shell.kill("SIGHUP");
    await endsWith(run, { exitCode: 0, signal: 1 }, "sighup");
  });

  test("an uncaught error", async (t) => {
    const run = await openHost(t);
    run.shell.type("queueMicrotask(() => { throw new TypeError('boom') })");
    await endsWith(run, { exitCode: 1, signal: 0 }, "uncaught_error");
    const [span] = sessionSpans(run);
    assert.equal(span?.attributes["error.type"], "TypeError");
    assert.equal(span?.status.code, 2);
  });

  test("an error the shell handles itself ends nothing", async (t) => {
    const run = await openHost(t);
    const mark = run.shell.mark();
    run.shell.type("setTimeout(() => { throw new Error('handled by the shell') }, 10); 'scheduled'");
    await run.shell.waitFor(/Uncaught Error: handled by the shell/, { since: mark });
    run.shell.type("'still here'");
    await run.shell.waitFor(/'still here'/, { since: mark });
    assert.equal(sessionSpans(run).length, 0);
    run.shell.type(".exit");
    await endsWith(run, { exitCode: 0, signal: 0 }, "exit_command");
  });
});

describe("the program exits as it would without the instrumentation", () => {
  for (const [name, act] of [
    ["process.exit(3)", (s: PtyShell) => s.type("process.exit(3)")],
    ["SIGTERM", (s: PtyShell) => s.kill("SIGTERM")],
    ["SIGHUP", (s: PtyShell) => s.kill("SIGHUP")],
  ] as const) {
    test(name, async (t) => {
      const bare = await openHost(t, false);
      act(bare.shell);
      const expected = await bare.shell.waitForExit();
      const run = await openHost(t, true);
      act(run.shell);
      assert.deepEqual(await run.shell.waitForExit(), expected);
      assert.equal(sessionSpans(run).length, 1);
    });
  }
});

test("a host that handles SIGTERM itself keeps the decision; the session still ends with sigterm", async (t) => {
  const run = await openHost(t, true, { FIXTURE_ON_SIGTERM: "graceful" });
  run.shell.kill("SIGTERM");
  await endsWith(run, { exitCode: 0, signal: 0 }, "sigterm");
  assert.match(run.shell.output, /\[host\] graceful stop/);
});

test("a session survives 1,000 evaluated inputs with one span", async (t) => {
  const run = await openHost(t);
  const INPUTS = 1000;
  const BATCH = 50;
  for (let i = 0; i < INPUTS; i += BATCH) {
    const mark = run.shell.mark();
    let lines = "";
    for (let j = i; j < i + BATCH; j++) lines += `n${j % 7} = ${j + 1}\r`;
    run.shell.write(lines);
    await run.shell.waitFor(new RegExp(`^${i + BATCH}$`, "m"), { since: mark });
  }
  run.shell.type(".exit");
  await endsWith(run, { exitCode: 0, signal: 0 }, "exit_command");
  assert.equal(sessionSpans(run)[0]?.attributes["shell.eval.count"], INPUTS);
});
