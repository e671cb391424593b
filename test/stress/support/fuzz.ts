/**
 * Running generated cases in concurrent batches: fast-check generates a
 * batch, the batch is sent at once, and every answer is checked. Batching is
 * what lets ten thousand cases per tool finish in minutes on two cores.
 *
 * A failure is reported with the first failing check's own message (which
 * shows the case, truncated) and the seed and path that replay it: the
 * counterexample itself may hold megabytes of generated text.
 */
import assert from "node:assert/strict";
import fc from "fast-check";

export const BATCH = 50;

/** Cases per tool (or per category), STRESS_FUZZ_CASES, default 10,000. */
export function fuzzCases(): number {
  return Number(process.env.STRESS_FUZZ_CASES ?? 10_000);
}

/** Runs `check` on `cases` generated values, BATCH at a time; returns how many were checked. */
export async function fuzz<T>(
  arbitrary: fc.Arbitrary<T>,
  cases: number,
  check: (value: T, index: number) => Promise<void>,
): Promise<number> {
  let checked = 0;
  const details = await fc.check(
    fc.asyncProperty(fc.array(arbitrary, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
      await Promise.all(
        batch.map(async (value, i) => {
          await check(value, i);
          checked++;
        }),
      );
    }),
    {
      numRuns: Math.ceil(cases / BATCH),
      // Shrinking a batch of huge values is slow; FUZZ_SHRINK=1 asks for it when investigating.
      endOnFailure: process.env.FUZZ_SHRINK !== "1",
      ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}),
      ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}),
    },
  );
  if (details.failed) {
    const cause =
      details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    assert.fail(`${cause}\n(replay with FC_SEED=${details.seed} FC_PATH=${details.counterexamplePath ?? ""})`);
  }
  return checked;
}
