/**
 * The retry policy of one send (src/exporter/retry.ts): how many tries, which
 * failures are tried again, how long the waits are, and that a wait does not
 * keep the process alive.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { retryDelayMs, withRetries } from "../../src/exporter/retry.ts";

const SOURCE = join(fileURLToPath(import.meta.url), "..", "..", "..", "src", "exporter", "retry.ts");
const FAST = { baseDelayMs: 1, maxDelayMs: 4 };

test("tries up to `attempts` times while `retry` says so, and answers with the first success", async () => {
  let calls = 0;
  const value = await withRetries(
    async () => {
      calls++;
      if (calls < 3) throw new Error(`failure ${calls}`);
      return "done";
    },
    { attempts: 4, ...FAST, retry: () => true },
  );
  assert.equal(value, "done");
  assert.equal(calls, 3);

  calls = 0;
  await assert.rejects(
    withRetries(
      async () => {
        calls++;
        throw new Error(`failure ${calls}`);
      },
      { attempts: 4, ...FAST, retry: () => true },
    ),
    /failure 4/,
  );
  assert.equal(calls, 4, "four attempts in all");
});

test("a failure `retry` refuses ends the tries at once, with that failure", async () => {
  let calls = 0;
  const seen: string[] = [];
  await assert.rejects(
    withRetries(
      async () => {
        calls++;
        throw new Error(calls === 1 ? "transient" : "rejected");
      },
      {
        attempts: 10,
        ...FAST,
        retry: (error) => {
          seen.push((error as Error).message);
          return (error as Error).message === "transient";
        },
      },
    ),
    /rejected/,
  );
  assert.equal(calls, 2);
  assert.deepEqual(seen, ["transient", "rejected"]);
});

test("each wait is drawn from [0, ceiling), the ceiling doubling from the base up to the maximum", () => {
  const policy = { baseDelayMs: 100, maxDelayMs: 2_000 };
  const ceilings = [100, 200, 400, 800, 1_600, 2_000, 2_000];
  for (const [i, ceiling] of ceilings.entries()) {
    const draws = Array.from({ length: 200 }, () => retryDelayMs(i + 1, policy));
    assert.ok(
      draws.every((d) => d >= 0 && d < ceiling),
      `retry ${i + 1}: ${Math.max(...draws)} ≥ ${ceiling}`,
    );
    // Full jitter spreads over the whole range, not a band near the ceiling.
    assert.ok(Math.min(...draws) < ceiling / 4 && Math.max(...draws) > (ceiling * 3) / 4, `retry ${i + 1}`);
  }
});

test("a program waiting to retry exits when it has nothing else to do", async () => {
  const program = `
    import { withRetries } from ${JSON.stringify(SOURCE)};
    Math.random = () => 0.5; // a wait of 30 s
    process.on("exit", () => console.log("exited"));
    withRetries(() => Promise.reject(new Error("down")), { attempts: 2, baseDelayMs: 60000, maxDelayMs: 60000, retry: () => true })
      .catch(() => console.log("gave up"));
  `;
  // With a 30 s wait ahead, a referenced timer would keep it past the 5 s limit.
  const began = performance.now();
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ["--input-type=module", "-e", program], { timeout: 5_000 }, (error, out) =>
      error ? reject(error) : resolve(out),
    );
  });
  assert.equal(stdout, "exited\n");
  assert.ok(performance.now() - began < 5_000);
});
