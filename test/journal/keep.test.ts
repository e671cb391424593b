/**
 * A process's journal, and the drain helper watching it, outlive a quiet
 * spell: once every event is answered for they are kept for
 * SHELL_SESSIONS_IDLE_CLOSE_MS, so the next shell reuses them instead of
 * paying for a new helper process on its way to the tracker; with 0 they go
 * at once. Shells run in a real worker process (the stress suite's), against
 * a real tracker over HTTP; the helpers are found in /proc by their command
 * line, which names the journal.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { JOURNAL_DIR_NAME } from "../../src/journal/journal.ts";
import { tempDir } from "../exporter/support.ts";
import { startTracker } from "../helpers/tracker.ts";
import { waitFor } from "../helpers/wait.ts";
import { Fleet } from "../stress/support/fleet.ts";

function journals(stateDir: string): string[] {
  try {
    return readdirSync(join(stateDir, JOURNAL_DIR_NAME)).filter((name) => name.endsWith(".jsonl"));
  } catch {
    return [];
  }
}

/** Live processes whose command line names a journal of `stateDir` (drain helpers). */
function helpers(stateDir: string): number[] {
  const dir = join(stateDir, JOURNAL_DIR_NAME);
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(dir)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

for (const idleClose of [undefined, "0"] as const) {
  const kept = idleClose === undefined;
  test(
    kept
      ? "by default the journal and its helper are kept between shells: one file, one helper for both"
      : "SHELL_SESSIONS_IDLE_CLOSE_MS=0: the journal goes as soon as its shell is answered for, and its helper with it",
    async (t) => {
      const tracker = await startTracker();
      t.after(() => tracker.stop());
      const fleet = await Fleet.start({
        workers: 1,
        sessionsPerWorker: 0,
        root: tempDir(t),
        env: {
          SESSION_BUDDY_URL: tracker.url,
          SESSION_BUDDY_SECRET: tracker.secret ?? "",
          ...(idleClose !== undefined ? { SHELL_SESSIONS_IDLE_CLOSE_MS: idleClose } : {}),
        },
      });
      t.after(() => fleet.kill());
      const [stateDir] = fleet.stateDirs as [string];

      await fleet.sequence(1);
      if (kept) {
        const [first] = await waitFor("the first shell's helper", () => {
          const found = helpers(stateDir);
          return found.length === 1 && found;
        });
        const [file] = journals(stateDir);
        assert.ok(file, "the journal is kept after its only shell was answered for");
        await fleet.sequence(1);
        assert.deepEqual(journals(stateDir), [file], "the second shell wrote to the same journal");
        assert.deepEqual(helpers(stateDir), [first], "and no second helper was started");
      } else {
        await waitFor("the journal removed and its helper gone", () => {
          return journals(stateDir).length === 0 && helpers(stateDir).length === 0;
        });
        await fleet.sequence(1);
        await waitFor("the second journal removed too", () => journals(stateDir).length === 0);
      }
      const [report] = await fleet.finish(30_000);
      assert.equal(report?.sessions.filter((s) => s.endAck !== null).length, 2, "both shells recorded");
    },
  );
}
