/**
 * The HTTP tracker's bound on V8's young generation.
 *
 * Under connection churn (many clients, or a hostile one opening and dropping
 * sockets) Node lets each of the two semi-spaces grow to 64 MB on a machine
 * with much memory; that, not our buffers, is most of the tracker's growth
 * under load. 16 MB keeps the peak of the hostile-load test near 240 MB
 * instead of 320 MB with no loss in latency. V8 reads the size only when the
 * heap is created (`v8.setFlagsFromString` afterwards changes nothing), so
 * the tracker replaces itself once at start-up, before it opens anything,
 * with the same program under the flag: `process.execve` keeps the process
 * id, the descriptors and the environment, so a supervisor sees no
 * difference.
 */

export const SEMI_SPACE_FLAG = "--max-semi-space-size=16";

/** True when the node flags or NODE_OPTIONS already choose a young generation size: the user's choice wins. */
export function youngGenerationChosen(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const chooses = (flag: string) => /^--max[-_](semi[-_]space|young[-_]generation)[-_]size\b/.test(flag);
  return execArgv.some(chooses) || (nodeOptions ?? "").split(/\s+/).some(chooses);
}

/**
 * Replaces this process with itself under {@link SEMI_SPACE_FLAG} unless a size is already chosen or
 * the platform cannot (`process.execve` needs POSIX and Node 22.15; in a worker it throws). Returns
 * only when nothing was replaced.
 */
export function boundYoungGeneration(): void {
  if (youngGenerationChosen(process.execArgv, process.env.NODE_OPTIONS)) return;
  if (typeof process.execve !== "function" || process.platform === "win32") return;
  const [script, ...args] = process.argv.slice(1);
  if (script === undefined) return;
  try {
    process.execve(process.execPath, [process.execPath, SEMI_SPACE_FLAG, ...process.execArgv, script, ...args]);
  } catch {
    // Not replaced (e.g. inside a worker thread): the tracker runs with Node's default sizes.
  }
}
