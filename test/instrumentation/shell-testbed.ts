/**
 * What the tests of instrumented programs share: where the programs are, the
 * banner a tracked shell prints, and a testbed per test file — a private
 * state dir and an OTLP receiver, both removed after the file's tests — with
 * the environment that sends a child's spans there and nowhere else.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext } from "node:test";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { type PtyShell, type SpawnOptions, spawnPty } from "../helpers/pty.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const FIXTURES = join(ROOT, "test/fixtures");
/** The built register entry (needs `npm run build`). */
export const REGISTER = join(ROOT, "dist/register.js");
/** The built `shell-sessions` CLI (needs `npm run build`). */
export const CLI = join(ROOT, "dist/cli/main.js");
/** The banner; with delivery off it says the session is traced, not tracked. */
export const BANNER =
  /session (?:tracking on|traced, not tracked \(delivery off\)) · session ([0-9a-f-]{36}) · trace ([0-9a-f]{32})/;

/** Waits for a tracked shell's banner and reads the ids it shows. */
export async function bannerOf(shell: PtyShell): Promise<{ sessionId: string; traceId: string }> {
  const [, sessionId = "", traceId = ""] = await shell.waitFor(BANNER);
  return { sessionId, traceId };
}

export interface TrackedShell {
  shell: PtyShell;
  sessionId: string;
  traceId: string;
}

/** Runs `args` in a PTY for the length of `t`, and waits for its `prompt` and its banner. */
export async function openTrackedShell(
  t: TestContext,
  args: string[],
  options: SpawnOptions & { prompt: string },
): Promise<TrackedShell> {
  const { prompt, ...spawnOptions } = options;
  const shell = spawnPty(args, spawnOptions);
  t.after(() => shell.dispose());
  await shell.waitFor(prompt);
  return { shell, ...(await bannerOf(shell)) };
}

/** Whether `span` is the session span of session `sessionId`. */
export function isSessionSpan(
  sessionId: string,
): (span: { name: string; attributes: Record<string, unknown> }) => boolean {
  return (span) => span.name === "shell.session" && span.attributes["session.id"] === sessionId;
}

export interface ShellTestbed {
  /** The state dir of every child (removed after the file's tests). */
  readonly work: string;
  /** Started before the file's first test. */
  readonly receiver: OtlpReceiver;
  /** Environment for a child: no tracker delivery, the testbed's state dir, no metrics or logs exported. */
  baseEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** `baseEnv` with the child's spans sent to the receiver. */
  env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** The one session span of `sessionId`, once it has arrived; fails if there is more than one. */
  sessionSpan(sessionId: string): Promise<ReceivedSpan>;
}

/** Registers the file's `before`/`after` hooks: call it once, at the top level of a test file. */
export function shellTestbed(prefix: string): ShellTestbed {
  const work = mkdtempSync(join(tmpdir(), prefix));
  let receiver: OtlpReceiver | undefined;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver?.close();
    rmSync(work, { recursive: true, force: true });
  });
  const bed: ShellTestbed = {
    work,
    get receiver(): OtlpReceiver {
      assert.ok(receiver, "the receiver starts in the file's before hook");
      return receiver;
    },
    baseEnv: (extra = {}) => ({
      SHELL_SESSIONS_DELIVERY: "off",
      SHELL_SESSIONS_STATE_DIR: work,
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      ...extra,
    }),
    env: (extra = {}) => bed.baseEnv({ ...bed.receiver.env(), ...extra }),
    async sessionSpan(sessionId) {
      const spans = await bed.receiver.waitForSpans(isSessionSpan(sessionId));
      assert.equal(spans.length, 1, `exactly one session span for ${sessionId}`);
      return spans[0] as ReceivedSpan;
    },
  };
  return bed;
}
