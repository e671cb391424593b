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

/**
 * Waiting on events where the tested thing can say when something changed
 * (output arrived, a request came in): `until(check)` resolves with the
 * first value `check` yields, tried at once and at every `wake()`. It
 * rejects with `timedOut()` at the deadline, or with what `check` throws
 * (to give up early, say when a program exited).
 */
export class Waiters {
  readonly #checks = new Set<() => void>();

  wake(): void {
    for (const check of [...this.#checks]) check();
  }

  until<T>(check: () => T | undefined, timeoutMs: number, timedOut: () => Error): Promise<T> {
    return new Promise((resolve, reject) => {
      const run = () => {
        let found: T | undefined;
        try {
          found = check();
        } catch (error) {
          done();
          reject(error);
          return;
        }
        if (found === undefined) return;
        done();
        resolve(found);
      };
      const timer = setTimeout(() => {
        done();
        reject(timedOut());
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#checks.delete(run);
      };
      this.#checks.add(run);
      run();
    });
  }
}
