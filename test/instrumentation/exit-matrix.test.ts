/**
 * No session escapes the record: every way out of a shell, at three moments
 * (before telemetry has loaded, right after the first prompt, mid-session),
 * with the tracker up and with it down (started again afterwards, with no
 * shell started and no command run since). Real shells in real PTYs under
 * `--import otel-shell-sessions/register` (or the user's own NodeSDK), a real
 * tracker over HTTP. Each shell must be in the tracker exactly once, ended
 * with its exit reason, or abandoned by the lease after SIGKILL. And a
 * tracker that answers late never holds up the way out.
 * Needs `npm run build`.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { SessionRecord } from "../../src/contract/index.ts";
import { ERAS_DIR_NAME } from "../../src/exporter/era-memory.ts";
import { storedSessions, tempDir, trackedShellEnv, waitFor } from "../exporter/support.ts";
import { startDelayProxy } from "../helpers/delay-proxy.ts";
import { KEY, type PtyShell, spawnPty } from "../helpers/pty.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const REGISTER = fileURLToPath(new URL("../../dist/register.js", import.meta.url));
const LEASE_SECONDS = 2;
const BATCH = 11;

type Moment = "at start" | "after prompt" | "mid-session";
const MOMENTS: Moment[] = ["at start", "after prompt", "mid-session"];

interface Way {
  name: string;
  /** The fixture's own action when taken at start (EXIT_HOST_ACT). */
  act: string;
  /** Taking it in the terminal, later. */
  take: (shell: PtyShell) => Promise<void> | void;
  expect: { status: "ended" | "abandoned"; reason?: string; code?: number };
  customSdk?: boolean;
}

const signal = (name: NodeJS.Signals) => (shell: PtyShell) => {
  process.kill(shell.pid, name);
};

const WAYS: Way[] = [
  {
    name: ".exit",
    act: "exit_command",
    take: (s) => s.type(".exit"),
    expect: { status: "ended", reason: "exit_command" },
  },
  { name: "Ctrl-D", act: "eof", take: (s) => s.write(KEY.ctrlD), expect: { status: "ended", reason: "eof" } },
  {
    name: "Ctrl-C twice",
    act: "sigint_tty",
    take: async (s) => {
      const mark = s.mark();
      s.write(KEY.ctrlC);
      await s.waitFor(/press Ctrl\+C again/, { since: mark });
      s.write(KEY.ctrlC);
    },
    expect: { status: "ended", reason: "sigint" },
  },
  { name: "SIGINT from outside", act: "sigint", take: signal("SIGINT"), expect: { status: "ended", reason: "sigint" } },
  { name: "SIGTERM", act: "sigterm", take: signal("SIGTERM"), expect: { status: "ended", reason: "sigterm" } },
  { name: "SIGHUP", act: "sighup", take: signal("SIGHUP"), expect: { status: "ended", reason: "sighup" } },
  {
    name: "process.exit(7)",
    act: "process_exit",
    take: (s) => s.type("process.exit(7)"),
    expect: { status: "ended", reason: "process_exit", code: 7 },
  },
  {
    name: "process.reallyExit(6)",
    act: "really_exit",
    take: (s) => s.type("process.reallyExit(6)"),
    expect: { status: "ended", reason: "process_exit", code: 6 },
  },
  {
    name: "uncaught exception (host code)",
    act: "uncaught_error",
    take: signal("SIGUSR2"),
    expect: { status: "ended", reason: "uncaught_error" },
  },
  {
    name: "SIGTERM, user's own NodeSDK",
    act: "sigterm",
    take: signal("SIGTERM"),
    expect: { status: "ended", reason: "sigterm" },
    customSdk: true,
  },
  { name: "SIGKILL", act: "sigkill", take: signal("SIGKILL"), expect: { status: "abandoned" } },
];

/** Heartbeats well inside the short lease, so only SIGKILLed shells are abandoned. */
const MATRIX_ENV = { SHELL_SESSIONS_COMPONENT: "matrix", SHELL_SESSIONS_HEARTBEAT_MS: "500" };

interface Run {
  way: Way;
  moment: Moment;
  pid: number;
}

async function runOne(way: Way, moment: Moment, env: NodeJS.ProcessEnv): Promise<Run> {
  const args = way.customSdk
    ? [join(FIXTURES, "exit-host.mjs")]
    : ["--import", REGISTER, join(FIXTURES, "exit-host.mjs")];
  const shell = spawnPty(args, {
    env: {
      ...env,
      ...(way.customSdk ? { EXIT_HOST_SDK: "custom" } : {}),
      ...(moment === "at start" ? { EXIT_HOST_ACT: way.act } : {}),
    },
  });
  try {
    if (moment === "after prompt") {
      await shell.waitFor(/host> $/);
      await way.take(shell);
    } else if (moment === "mid-session") {
      await shell.waitFor(/session tracking on/);
      const mark = shell.mark();
      shell.type("6*7");
      await shell.waitFor(/42/, { since: mark });
      await way.take(shell);
    }
    await shell.waitForExit();
    return { way, moment, pid: shell.pid };
  } finally {
    shell.dispose();
  }
}

async function runAll(env: NodeJS.ProcessEnv): Promise<Run[]> {
  const cases = WAYS.flatMap((way) => MOMENTS.map((moment) => ({ way, moment })));
  const runs: Run[] = [];
  for (let i = 0; i < cases.length; i += BATCH) {
    runs.push(...(await Promise.all(cases.slice(i, i + BATCH).map((c) => runOne(c.way, c.moment, env)))));
  }
  return runs;
}

function verdict(run: Run, sessions: SessionRecord[]): string | undefined {
  const mine = sessions.filter((s) => s.pid === run.pid);
  if (mine.length !== 1) return `${mine.length} sessions`;
  const [session] = mine as [SessionRecord];
  const { status, reason, code } = run.way.expect;
  if (session.status !== status) return `status ${session.status}`;
  if (reason !== undefined && session.exit_reason !== reason) return `exit_reason ${session.exit_reason}`;
  if (code !== undefined && session.end_metadata?.exit_code !== code)
    return `exit_code ${session.end_metadata?.exit_code}`;
  return undefined;
}

function table(label: string, runs: Run[], sessions: SessionRecord[]): string {
  const rows = WAYS.map((way) => {
    const cells = MOMENTS.map((moment) => {
      const run = runs.find((r) => r.way === way && r.moment === moment) as Run;
      const mine = sessions.filter((s) => s.pid === run.pid);
      const shown = mine.map((s) => (s.status === "ended" ? `${s.exit_reason}` : s.status)).join("+") || "missing";
      return verdict(run, sessions) === undefined ? `✔ ${shown}` : `✖ ${shown}`;
    });
    return `| ${way.name} | ${cells.join(" | ")} |`;
  });
  return [`tracker ${label}:`, `| way out | ${MOMENTS.join(" | ")} |`, "|---|---|---|---|", ...rows].join("\n");
}

async function expectAllRecorded(label: string, tracker: TrackerProcess, runs: Run[]): Promise<void> {
  let sessions: SessionRecord[] = [];
  try {
    await waitFor(
      "every shell in the tracker, as expected",
      async () => {
        sessions = (await storedSessions(tracker.store)).sessions;
        return runs.every((run) => verdict(run, sessions) === undefined);
      },
      60_000,
    );
  } finally {
    process.stdout.write(`${table(label, runs, sessions)}\n`);
  }
  const { events } = await storedSessions(tracker.store);
  const abandoned = runs.filter((r) => r.way.expect.status === "abandoned").length;
  assert.equal(events, runs.length * 2 - abandoned, "each start and end is in the event log exactly once");
}

test("every way out, at every moment, with the tracker up: each shell recorded once, with its exit reason", async (t) => {
  const tracker = await startTracker({ lease: LEASE_SECONDS });
  t.after(() => tracker.stop());
  const runs = await runAll(trackedShellEnv(tracker, tempDir(t, "matrix-up-"), MATRIX_ENV));
  await expectAllRecorded("up", tracker, runs);
});

test("the same with the tracker down until every shell is gone, then up: delivered with no shell and no command", async (t) => {
  const tracker = await startTracker({ lease: LEASE_SECONDS });
  t.after(() => tracker.stop());
  const env = trackedShellEnv(tracker, tempDir(t, "matrix-down-"), MATRIX_ENV);
  await tracker.kill("SIGTERM");
  const runs = await runAll(env);
  await tracker.restart();
  await expectAllRecorded("down, then up", tracker, runs);
});

test("a tracker that holds every answer for 10 s: `.exit` gives the terminal back before any answer, on a warm connection, at a first connect and while a later process connects; all recorded", async (t) => {
  const HOLD_MS = 10_000;
  const tracker = await startTracker({ lease: 60 });
  t.after(() => tracker.stop());
  const slow = await startDelayProxy(tracker.url, 0);
  t.after(() => slow.close());
  const shellIn = (stateDir: string) => {
    // Calls may take longer than the hold: only the exit is under test, not a timeout.
    const env = trackedShellEnv({ url: slow.url, secret: tracker.secret }, stateDir, {
      SHELL_SESSIONS_COMPONENT: "matrix",
      SHELL_SESSIONS_CALL_TIMEOUT_MS: "60000",
    });
    const shell = spawnPty(["--import", REGISTER, join(FIXTURES, "exit-host.mjs")], { env });
    t.after(() => shell.dispose());
    return shell;
  };
  /** Takes `.exit` and checks that no answer came before the shell was gone; returns how many requests it sent meanwhile. */
  const exitBeforeAnswers = async (shell: PtyShell, moment: string) => {
    const [answered, received] = [slow.answered, slow.received];
    shell.type(".exit");
    await shell.waitForExit();
    assert.equal(slow.answered, answered, `${moment}: the shell waited for the tracker's answer`);
    return slow.received - received;
  };
  /** Waits until the shell's session started and its first request to the tracker is under way (and held). */
  const connecting = async (shell: PtyShell) => {
    const received = slow.received;
    await shell.waitFor(/session tracking on/);
    await waitFor("the shell's first request under way", () => slow.received > received);
  };

  // A call in flight on a warm connection.
  const used = tempDir(t, "matrix-slow-");
  const warm = shellIn(used);
  await warm.waitFor(/session tracking on/);
  await waitFor("the start answered", () => slow.toolCalls.some((c) => c.tool === "track_session_start"));
  slow.delayMs = HOLD_MS;
  const sentOnExit = await exitBeforeAnswers(warm, "warm connection");
  assert.ok(sentOnExit > 0, "the end was sent, and still held by the tracker when the shell exited");

  // The first process of a fresh state dir: its connect waits on the SDK's era probe.
  const first = shellIn(tempDir(t, "matrix-slow-fresh-"));
  await connecting(first);
  await exitBeforeAnswers(first, "first connect (era probe)");

  // A later process of the first state dir: the era is known there, so its connect starts with the tool listing.
  assert.equal(readdirSync(join(used, ERAS_DIR_NAME)).length, 1, "the tracker's era is remembered in the state dir");
  const later = shellIn(used);
  await connecting(later);
  await exitBeforeAnswers(later, "a later process's connect");

  // What the shells left is delivered by their drain helpers, to a tracker that now answers at once.
  slow.delayMs = 0;
  const runs = [warm, first, later];
  const { sessions } = await waitFor(
    "every shell ended in the tracker",
    async () => {
      const found = await storedSessions(tracker.store);
      const mine = found.sessions.filter((s) => runs.some((r) => r.pid === s.pid));
      return mine.length === runs.length && mine.every((s) => s.status === "ended") && found;
    },
    60_000,
  );
  for (const s of sessions) assert.equal(s.exit_reason, "exit_command");
  assert.equal((await storedSessions(tracker.store)).events, runs.length * 2, "each start and end recorded once");
});
