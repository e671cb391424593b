/**
 * Shells killed at random instants: 200 shell processes under
 * `--import otel-shell-sessions/register`, each ended 0–3 s after its prompt
 * by SIGKILL, `process.exit()`, `process.reallyExit()` or SIGINT from
 * outside. With the tracker up, and with the tracker down until every shell
 * is gone and then up with no shell started and no command run since: each
 * shell is in the tracker exactly once, the ended ones with their reason.
 * Needs `npm run build`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { SessionRecord } from "../../src/contract/index.ts";
import { storedSessions, tempDir, trackedShellEnv, waitFor } from "../exporter/support.ts";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";

const HOST = fileURLToPath(new URL("../fixtures/exit-host.mjs", import.meta.url));
const REGISTER = fileURLToPath(new URL("../../dist/register.js", import.meta.url));
const SHELLS = Number(process.env.STRESS_KILLED_SHELLS ?? 200);
const AT_ONCE = 25;
const WAYS = ["sigkill", "process_exit", "really_exit", "sigint"] as const;
type KillWay = (typeof WAYS)[number];
const REASON: Record<KillWay, string | undefined> = {
  sigkill: undefined,
  process_exit: "process_exit",
  really_exit: "process_exit",
  sigint: "sigint",
};

interface Killed {
  pid: number;
  way: KillWay;
}

/** One shell, ended `way` at a random instant 0–3 s after its prompt. */
async function killOne(env: NodeJS.ProcessEnv, way: KillWay): Promise<Killed> {
  const delay = Math.floor(Math.random() * 3000);
  const inside = way === "process_exit" || way === "really_exit";
  const child = spawn(process.execPath, ["--import", REGISTER, HOST], {
    env: inside ? { ...env, EXIT_HOST_ACT: way, EXIT_HOST_ACT_MS: String(delay) } : env,
    stdio: ["pipe", "pipe", "ignore"],
  });
  const exited = once(child, "exit");
  let out = "";
  child.stdout.on("data", (d) => {
    out += String(d);
  });
  await waitFor("the prompt", () => out.includes("host> ") || child.exitCode !== null, 30_000);
  if (!inside) {
    await new Promise((resolve) => setTimeout(resolve, delay));
    child.kill(way === "sigkill" ? "SIGKILL" : "SIGINT");
  }
  await exited;
  return { pid: child.pid as number, way };
}

async function killAll(env: NodeJS.ProcessEnv): Promise<Killed[]> {
  const killed: Killed[] = [];
  for (let i = 0; i < SHELLS; i += AT_ONCE) {
    const batch = Array.from(
      { length: Math.min(AT_ONCE, SHELLS - i) },
      (_, j) => WAYS[(i + j) % WAYS.length] as KillWay,
    );
    killed.push(...(await Promise.all(batch.map((way) => killOne(env, way)))));
  }
  return killed;
}

function problems(killed: Killed[], sessions: SessionRecord[]): string[] {
  const found: string[] = [];
  for (const shell of killed) {
    const mine = sessions.filter((s) => s.pid === shell.pid);
    if (mine.length !== 1) found.push(`pid ${shell.pid} (${shell.way}): ${mine.length} sessions`);
    else if (REASON[shell.way] !== undefined && mine[0]?.exit_reason !== REASON[shell.way]) {
      found.push(`pid ${shell.pid} (${shell.way}): ${mine[0]?.status} ${mine[0]?.exit_reason}`);
    }
  }
  return found;
}

async function expectRecorded(label: string, tracker: TrackerProcess, killed: Killed[]): Promise<void> {
  const started = Date.now();
  let sessions: SessionRecord[] = [];
  try {
    await waitFor(
      `all ${killed.length} shells in the tracker`,
      async () => {
        sessions = (await storedSessions(tracker.store)).sessions;
        return problems(killed, sessions).length === 0;
      },
      150_000,
    );
  } finally {
    const left = problems(killed, sessions);
    const duplicated = killed.filter((k) => sessions.filter((s) => s.pid === k.pid).length > 1).length;
    process.stdout.write(
      `${label}: ${killed.length - left.length} of ${killed.length} recorded as expected, ${duplicated} duplicated, ` +
        `${Math.round((Date.now() - started) / 1000)} s after the last shell died${left.length ? `; ${left.slice(0, 5).join("; ")}` : ""}\n`,
    );
  }
  assert.equal(sessions.length, killed.length, "one session per shell, none twice");
}

test(`${SHELLS} shells killed at random instants, tracker up: all recorded, none twice`, async (t) => {
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const killed = await killAll(
    trackedShellEnv(tracker, tempDir(t, "kills-up-"), { SHELL_SESSIONS_COMPONENT: "killed" }),
  );
  await expectRecorded("tracker up", tracker, killed);
});

test(`${SHELLS} shells killed at random instants, tracker down until all are dead: all recorded by the drain helpers`, async (t) => {
  const tracker = await startTracker();
  t.after(() => tracker.stop());
  const env = trackedShellEnv(tracker, tempDir(t, "kills-down-"), { SHELL_SESSIONS_COMPONENT: "killed" });
  await tracker.kill("SIGTERM");
  const killed = await killAll(env);
  await tracker.restart();
  await expectRecorded("tracker down, then up", tracker, killed);
});
