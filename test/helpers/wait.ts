/**
 * The one way tests wait for something: poll a check until it yields a
 * value, with a deadline, never a bare sleep. A check that throws is retried
 * (what it threw is reported if the deadline passes first).
 */

/**
 * Polls `check` until it returns something other than undefined or false,
 * or fails after `timeoutMs` naming `what` (a function is asked only then,
 * so its message can describe the last state seen).
 */
export async function waitFor<T>(
  what: string | (() => string),
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const name = typeof what === "function" ? what() : what;
      const cause = last instanceof Error ? `: ${last.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${name}${cause}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
