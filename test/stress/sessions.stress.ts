/**
 * A thousand concurrent shell sessions against one tracker over HTTP: with
 * the tracker up, with the tracker killed with SIGKILL and restarted ten
 * times during the run, and with the tracker unreachable until half the
 * sessions have ended. In every scenario no event may be lost and none
 * counted twice.
 *
 * Each shell is a real REPLServer with the real instrumentation and the real
 * exporter, in worker processes of a hundred shells each (one exporter per
 * process, each shell its own session span); the tracker is a real
 * `shell-sessions serve` process. STRESS_SESSIONS and STRESS_WORKERS size
 * the runs (default 1,000 sessions in 10 workers); STRESS_REPORT=FILE
 * appends each scenario's figures to FILE as a JSON line.
 */
import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { test } from "node:test";
import { COLD_SESSIONS } from "./support/fleet.ts";
import { runScenario, SCENARIOS, type ScenarioResult } from "./support/scenarios.ts";
import { formatNumber } from "./support/stats.ts";

const SESSIONS = Number(process.env.STRESS_SESSIONS ?? 1_000);
const WORKERS = Number(process.env.STRESS_WORKERS ?? 10);
const KILLS = 10;

function summary(r: ScenarioResult): string {
  return [
    `${r.scenario}: ${r.sessionsOpened} sessions opened (${r.peakOpen} open at once, ${r.workers} processes)`,
    `events emitted ${r.eventsEmitted}, acknowledged ${r.eventsAcknowledged} (${r.acknowledgedInProcess} while the shells' processes ran)`,
    `lost ${r.lost}, duplicated ${r.duplicated}, resends de-duplicated by the tracker ${r.resentAndDeduplicated}`,
    `emission latency p50 ${formatNumber(r.latency.all.p50, "ms")}, p99 ${formatNumber(r.latency.all.p99, "ms")}`,
    `after each process's first ${COLD_SESSIONS} sessions p50 ${formatNumber(r.latency.warm.p50, "ms")}, p99 ${formatNumber(r.latency.warm.p99, "ms")}`,
    `${r.kills} tracker kills, ${r.spoolsDrainedAfterwards} spools drained with \`spool drain\` afterwards, ${formatNumber(r.durationMs / 1000, "s")}`,
    `exporter outcomes ${JSON.stringify(r.emissions)}`,
  ].join("; ");
}

for (const scenario of SCENARIOS) {
  test(`${scenario}: ${SESSIONS} concurrent shell sessions, none lost, none duplicated`, {
    timeout: 600_000,
  }, async (t) => {
    const result = await runScenario(scenario, {
      sessions: SESSIONS,
      workers: WORKERS,
      kills: KILLS,
      log: (line) => t.diagnostic(line),
    });
    t.diagnostic(summary(result));
    if (process.env.STRESS_REPORT) appendFileSync(process.env.STRESS_REPORT, `${JSON.stringify(result)}\n`);
    const expected = Math.ceil(SESSIONS / WORKERS) * WORKERS;
    assert.equal(result.sessionsOpened, expected, "every shell opened a session");
    assert.equal(result.peakOpen, expected, "all sessions were open at the same time");
    assert.deepEqual(result.problems, [], "what the shells emitted and what the tracker stored differ");
    assert.equal(result.lost, 0, "lost events");
    assert.equal(result.duplicated, 0, "duplicated events");
    assert.equal(result.unexpected, 0, "sessions nobody opened");
    assert.equal(
      result.eventsAcknowledged,
      result.eventsEmitted,
      "every start and end is in the tracker's event log once",
    );
    if (scenario === "tracker-killed") assert.equal(result.kills, KILLS, "the tracker was killed and restarted");
  });
}
