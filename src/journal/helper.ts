/**
 * The drain helper: a small detached process that outlives the one that
 * started it, so that no way of dying leaves a journal's events undelivered.
 *
 * It is started once a process has a journal, and waits, doing nothing, on
 * a pipe from its parent. The kernel closes that pipe however the parent
 * ends (exit, signal, SIGKILL, power loss excepted), so the helper learns of
 * the death at once without polling; it then hands the journal to the spool
 * and drains the spool for a bounded time (src/exporter/drain-helper.ts).
 * A parent whose events have all been answered for closes the pipe itself,
 * and the helper finds nothing to do.
 *
 * Neither the child nor its pipe keeps the parent alive, and the child is in
 * its own process group, so a Ctrl-C or a terminal hang-up aimed at the
 * shell does not reach it.
 */
import type { ChildProcess } from "node:child_process";

// Built-ins through process.getBuiltinModule: this module is loaded on the way to the first prompt (see ids.ts).
const { closeSync, openSync, statSync, truncateSync } = process.getBuiltinModule("node:fs");
const { dirname, extname, join } = process.getBuiltinModule("node:path");

/** The helper's log, beside the journals; cut back when it grows past this. */
export const HELPER_LOG_NAME = "drain-helper.log";
const HELPER_LOG_MAX_BYTES = 1024 * 1024;

export interface DrainHelper {
  readonly alive: boolean;
  /** Lets the helper go: it wakes, finds the work done, and exits. */
  release(): void;
}

/** The helper's program: the same build (`.js`) or sources (`.ts`) as this file. */
function helperEntry(): string {
  const here = process.getBuiltinModule("node:url").fileURLToPath(import.meta.url);
  return join(dirname(here), "..", "exporter", `drain-helper${extname(here)}`);
}

function openLog(dir: string): number | "ignore" {
  const path = join(dir, HELPER_LOG_NAME);
  try {
    if (statSync(path).size > HELPER_LOG_MAX_BYTES) truncateSync(path, 0);
  } catch {
    // No log yet.
  }
  try {
    return openSync(path, "a", 0o600);
  } catch {
    return "ignore";
  }
}

export function spawnDrainHelper(journalPath: string, env: NodeJS.ProcessEnv): DrainHelper {
  const { spawn } = process.getBuiltinModule("node:child_process");
  const log = openLog(dirname(journalPath));
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [helperEntry(), journalPath, String(process.pid)], {
      detached: true,
      stdio: ["pipe", "ignore", log],
      env: { ...env },
      windowsHide: true,
    });
  } finally {
    if (typeof log === "number") closeSync(log);
  }
  let alive = true;
  child.on("exit", () => {
    alive = false;
  });
  child.on("error", () => {
    alive = false;
  });
  const pipe = child.stdin;
  // A write to a helper that has gone away must not become an uncaught error in the host.
  pipe?.on("error", () => {});
  (pipe as unknown as { unref?: () => void } | null)?.unref?.();
  child.unref();
  return {
    get alive() {
      return alive;
    },
    release() {
      pipe?.end();
    },
  };
}
