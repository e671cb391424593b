/**
 * Time to first prompt, and the memory of a shell: a `node` REPL spawned in
 * a real pseudo-terminal, timed from the spawn to its prompt appearing on
 * the terminal, bare and with each `--import` preload.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnPty } from "../../test/helpers/pty.ts";
import { childEnv } from "../../test/helpers/tracker.ts";
import { leftoversGone, rssMiB } from "./machine.ts";

/** The REPL's prompt at the start of a line. */
const PROMPT = /(^|\n)> /;

/** An application that starts its own NodeSDK (bench/lib/app-sdk.mjs). */
const APP_SDK = fileURLToPath(new URL("./app-sdk.mjs", import.meta.url));

export const PRELOADS = {
  bare: [],
  register: ["--import", "otel-shell-sessions/register"],
  "auto-instrumentations": ["--import", "@opentelemetry/auto-instrumentations-node/register"],
  "app-sdk": ["--import", APP_SDK],
  "app-sdk+register": ["--import", APP_SDK, "--import", "otel-shell-sessions/register"],
} as const satisfies Record<string, readonly string[]>;
export type Preload = keyof typeof PRELOADS;

/**
 * The same settings for every variant: the SDK on, no OTLP exporters (so no
 * variant pays for a collector that is not there), the tracker at `url`.
 * `collector: "absent"` keeps the SDK's default OTLP exporters instead,
 * with no Collector listening (as on a machine where none was set up).
 */
export function shellEnv(
  url: string,
  secret: string | undefined,
  stateDir: string,
  { collector = "off" }: { collector?: "off" | "absent" } = {},
): NodeJS.ProcessEnv {
  return childEnv({
    ...(collector === "off"
      ? { OTEL_TRACES_EXPORTER: "none", OTEL_METRICS_EXPORTER: "none", OTEL_LOGS_EXPORTER: "none" }
      : { OTEL_SDK_DISABLED: undefined }),
    SESSION_BUDDY_URL: url,
    ...(secret !== undefined ? { SESSION_BUDDY_SECRET: secret } : {}),
    SHELL_SESSIONS_STATE_DIR: stateDir,
    // Shells here are killed at their prompt; the drain helpers they leave give up at once, so none outlives its figure.
    SHELL_SESSIONS_HELPER_TIMEOUT_MS: "0",
  });
}

/**
 * After a shell has gone: its drain helper (if it left one) has finished too,
 * so that the next figure, of whichever variant, has the cores to itself.
 */
async function quiet(env: NodeJS.ProcessEnv): Promise<void> {
  const stateDir = env.SHELL_SESSIONS_STATE_DIR;
  if (stateDir === undefined) return;
  const left = await leftoversGone(stateDir);
  if (left > 0) process.stderr.write(`bench: ${left} drain helper(s) under ${stateDir} still running after 10 s\n`);
}

/** Spawns a REPL with `preload`, waits for its prompt, and kills it. */
export async function timeToPrompt(preload: Preload, env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  const started = performance.now();
  const shell = spawnPty([...PRELOADS[preload]], { env, cwd });
  try {
    await shell.waitFor(PROMPT, { timeoutMs: 60_000 });
    return performance.now() - started;
  } finally {
    shell.dispose();
    await shell.exited;
    await quiet(env);
  }
}

export interface ShellMemory {
  /** RSS when the prompt appeared, MiB. */
  atPrompt: number;
  /** RSS once `ready()` resolved (for an instrumented shell: its session acknowledged by the tracker), MiB. */
  settled: number;
  /** Milliseconds from the prompt to `ready()`. */
  settleMs: number;
}

/**
 * The RSS of a REPL at its prompt and again once `ready` resolves (or, for a
 * bare shell, after `waitMs`, the time its instrumented twin needed).
 */
export async function shellMemory(
  preload: Preload,
  env: NodeJS.ProcessEnv,
  cwd: string,
  ready: (() => Promise<void>) | { waitMs: number },
): Promise<ShellMemory> {
  const shell = spawnPty([...PRELOADS[preload]], { env, cwd });
  try {
    await shell.waitFor(PROMPT, { timeoutMs: 60_000 });
    const atPrompt = rssMiB(shell.pid);
    const promptAt = performance.now();
    if (typeof ready === "function") await ready();
    else await new Promise((resolve) => setTimeout(resolve, ready.waitMs));
    return { atPrompt, settled: rssMiB(shell.pid), settleMs: performance.now() - promptAt };
  } finally {
    shell.dispose();
    await shell.exited;
    await quiet(env);
  }
}

/** A shell's banner: telemetry has loaded and the session span has started. */
const BANNER = /session tracking on/;
/** After the prompt (and banner), the shell is left alone this long, as a person would read the banner, before `.exit`. */
const SETTLE_MS = 500;

/**
 * Time from typing `.exit` to the process having exited (the terminal given
 * back): the shell opened, its telemetry loaded, then closed. With
 * `atPrompt`, `.exit` is typed the moment the prompt appears instead (while
 * telemetry is still loading, for register).
 */
export async function timeToExit(
  preload: Preload,
  env: NodeJS.ProcessEnv,
  cwd: string,
  atPrompt = false,
): Promise<number> {
  const shell = spawnPty([...PRELOADS[preload]], { env, cwd });
  try {
    await shell.waitFor(PROMPT, { timeoutMs: 60_000 });
    if (!atPrompt) {
      if (preload === "register") await shell.waitFor(BANNER, { timeoutMs: 60_000 });
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    }
    const started = performance.now();
    shell.type(".exit");
    await shell.waitForExit(60_000);
    return performance.now() - started;
  } finally {
    shell.dispose();
    await quiet(env);
  }
}

/** The event-loop probe every shell of {@link firstAnswer} loads first (bare and instrumented alike). */
const STALL_PROBE = fileURLToPath(new URL("./stall-probe.mjs", import.meta.url));
/** The window after the prompt in which the longest stall is taken. */
export const STALL_WINDOW_MS = 5_000;
/** The answer to `6*7` on a line of its own. */
const ANSWER = /\n42\r?\n/;

export interface FirstAnswer {
  /** Spawn to `42` on screen, with `6*7` typed the moment the prompt appeared, ms. */
  answerMs: number;
  /** The longest time the shell's event loop was held up within {@link STALL_WINDOW_MS} after the prompt, ms. */
  stallMs: number;
}

/**
 * What a person feels first: the prompt appears, they type `6*7`, and wait
 * for `42`. The shell then stays open for {@link STALL_WINDOW_MS} while a
 * probe (stall-probe.mjs) notes every time its event loop was held up; the
 * longest of those within the window is the stall figure.
 */
export async function firstAnswer(preload: Preload, env: NodeJS.ProcessEnv, cwd: string): Promise<FirstAnswer> {
  const stateDir = env.SHELL_SESSIONS_STATE_DIR ?? cwd;
  mkdirSync(stateDir, { recursive: true });
  const probeFile = join(stateDir, `stalls-${process.pid}-${Math.round(performance.now() * 1000)}.json`);
  const started = performance.now();
  const shell = spawnPty(["--import", STALL_PROBE, ...PRELOADS[preload]], {
    env: { ...env, STALL_PROBE_FILE: probeFile },
    cwd,
  });
  try {
    await shell.waitFor(PROMPT, { timeoutMs: 60_000 });
    const promptAt = performance.timeOrigin + performance.now();
    shell.type("6*7");
    await shell.waitFor(ANSWER, { timeoutMs: 60_000 });
    const answerMs = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, STALL_WINDOW_MS));
    shell.type(".exit");
    await shell.waitForExit(60_000);
    const gaps = JSON.parse(readFileSync(probeFile, "utf8")) as [number, number][];
    let stallMs = 0;
    for (const [began, length] of gaps) {
      const within = Math.min(began + length, promptAt + STALL_WINDOW_MS) - Math.max(began, promptAt);
      stallMs = Math.max(stallMs, within);
    }
    return { answerMs, stallMs };
  } finally {
    shell.dispose();
    await shell.exited;
    await quiet(env);
  }
}
