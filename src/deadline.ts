/**
 * Waiting for work, but not forever: shutdown, flush and exit paths must never
 * hang on an exporter or a connection that does not answer.
 */

export interface DeadlineOptions {
  /**
   * Whether the timer may let the process exit before it fires. Leave it
   * referenced where something must run after the wait (re-raising a signal).
   */
  unref?: boolean;
}

/**
 * Resolves once `work` settles or `ms` have passed, whichever is first: true
 * if the work settled in time. Never rejects; the work's own outcome is left
 * to the caller.
 */
export async function settledWithin(
  work: Promise<unknown>,
  ms: number,
  options: DeadlineOptions = {},
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    if (options.unref) timer.unref();
  });
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keeps the process alive until `work` settles (for a program whose whole job it is); never rejects. */
export function holdWhile(work: Promise<unknown>): void {
  const hold = setInterval(() => {}, 2 ** 30);
  const release = () => clearInterval(hold);
  work.then(release, release);
}
