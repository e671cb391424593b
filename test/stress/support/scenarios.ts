/**
 * The three delivery scenarios under load: a thousand concurrent shells
 * against one tracker over HTTP that stays up, that is killed with SIGKILL
 * and restarted again and again, and that is unreachable for the first half
 * of the run. Each returns what the shells emitted, what the tracker
 * stored, and the difference (lost, duplicated).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../../src/store/index.ts";
import { freePort } from "../../helpers/ports.ts";
import { runCli, TrackerProcess } from "../../helpers/tracker.ts";
import { checkDelivery, type DeliveryCheck, Fleet } from "./fleet.ts";

export const SCENARIOS = ["tracker-up", "tracker-killed", "tracker-unreachable-first-half"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface ScenarioOptions {
  sessions: number;
  workers: number;
  /** Tracker kills in "tracker-killed". */
  kills?: number;
  /** Opening (and, separately, closing) the sessions is spread over this long. */
  spreadMs?: number;
  /** How long the shells' processes wait for the last acknowledgements before handing over to `spool drain`. */
  settleTimeoutMs?: number;
  log?: (line: string) => void;
  /** Extra environment for the shells (e.g. SHELL_SESSIONS_LOG=debug when investigating). */
  env?: Record<string, string>;
  /** Called with the shells' logs at the end, before they are removed. */
  onLogs?: (logs: string) => void;
  /** Keep every worker's full log here (see FleetOptions.logDir). */
  logDir?: string;
}

export interface ScenarioResult extends DeliveryCheck {
  scenario: ScenarioName;
  workers: number;
  sessionsPerWorker: number;
  /** Sessions open at the same time at the peak (all of them: every worker holds its shells open until all are open). */
  peakOpen: number;
  kills: number;
  /** Workers whose events were not all acknowledged before they exited; their spools were drained with `shell-sessions spool drain`. */
  spoolsDrainedAfterwards: number;
  durationMs: number;
}

/**
 * Delivery settings for the run: documented knobs, set so that recovery fits
 * a bounded test. The exit grace is raised because every worker outlives its
 * shells here: with the default (1 s) a process whose shells have all closed
 * parks its background drain after a second, and what is left waits for the
 * next program or `spool drain`.
 */
export const DELIVERY_ENV = {
  SHELL_SESSIONS_SPOOL_RETRY_MS: "250",
  SHELL_SESSIONS_BREAKER_RESET_MS: "500",
  SHELL_SESSIONS_EXIT_GRACE_MS: "30000",
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Starts `tracker` on `port`, retrying briefly while the previous process's socket is released. */
async function startOn(tracker: TrackerProcess, port: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await tracker.start(port);
      return;
    } catch (error) {
      if (attempt >= 10 || !/EADDRINUSE/.test(String(error))) throw error;
      await sleep(100 * attempt);
    }
  }
}

/** The same tracker (state dir, store, secret, lease) as a fresh process object, for a start after a SIGKILL. */
function successor(tracker: TrackerProcess): TrackerProcess {
  return new TrackerProcess({
    stateDir: tracker.stateDir,
    store: tracker.store,
    ...(tracker.secret !== undefined ? { secret: tracker.secret } : {}),
  });
}

export async function runScenario(scenario: ScenarioName, options: ScenarioOptions): Promise<ScenarioResult> {
  const log = options.log ?? (() => {});
  const began = performance.now();
  const sessionsPerWorker = Math.ceil(options.sessions / options.workers);
  const spreadMs = options.spreadMs ?? 8_000;
  const settleTimeoutMs = options.settleTimeoutMs ?? 90_000;
  const root = mkdtempSync(join(tmpdir(), `otel-shell-sessions-stress-${scenario}-`));
  let tracker = new TrackerProcess({ stateDir: join(root, "tracker") });
  let fleet: Fleet | undefined;
  let kills = 0;
  try {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/mcp`;
    if (scenario !== "tracker-unreachable-first-half") await startOn(tracker, port);
    fleet = await Fleet.start({
      workers: options.workers,
      sessionsPerWorker,
      root: join(root, "shells"),
      ...(options.logDir !== undefined ? { logDir: options.logDir } : {}),
      env: { ...DELIVERY_ENV, ...options.env, SESSION_BUDDY_URL: url, SESSION_BUDDY_SECRET: tracker.secret },
    });
    log(`${scenario}: ${options.workers} workers up`);

    let killer: Promise<void> = Promise.resolve();
    if (scenario === "tracker-killed") {
      const total = options.kills ?? 10;
      // Spread over the opening and the closing, so kills land on starts, ends and spooled resends alike.
      const intervalMs = (2 * spreadMs) / (total + 1);
      killer = (async () => {
        for (let i = 0; i < total; i++) {
          await sleep(intervalMs);
          const status = await tracker.kill("SIGKILL");
          if (status.signal !== "SIGKILL") throw new Error(`tracker ended with ${JSON.stringify(status)}, not SIGKILL`);
          kills++;
          tracker = successor(tracker);
          await startOn(tracker, port);
          log(`${scenario}: kill ${kills} of ${total}, tracker back as pid ${tracker.pid}`);
        }
      })();
      // Awaited after the closing; until then a failure must not surface as an unhandled rejection.
      killer.catch(() => {});
    }

    const peakOpen = await fleet.open(spreadMs);
    log(`${scenario}: ${peakOpen} sessions open`);
    if (scenario === "tracker-unreachable-first-half") {
      const half = Math.floor(sessionsPerWorker / 2);
      await fleet.close(half, spreadMs / 2);
      log(`${scenario}: half closed with nothing listening; starting the tracker`);
      await startOn(tracker, port);
      await fleet.close(sessionsPerWorker - half, spreadMs / 2);
    } else {
      await fleet.close(sessionsPerWorker, spreadMs);
    }
    await killer;
    const reports = await fleet.finish(settleTimeoutMs);
    log(`${scenario}: shells finished`);
    options.onLogs?.(fleet.logs());

    // What the shells' own processes could not deliver before exiting waits in their spools: deliver it as an operator would.
    const unsettled = reports.filter((r) => !r.settled);
    for (const report of unsettled) {
      const stateDir = fleet.stateDirs[report.index] as string;
      const drained = await runCli(
        ["spool", "drain", "--url", url, "--timeout", "60"],
        { SHELL_SESSIONS_STATE_DIR: stateDir, ...(tracker.secret ? { SESSION_BUDDY_SECRET: tracker.secret } : {}) },
        90_000,
      );
      log(`${scenario}: spool drain of worker ${report.index}: exit ${drained.code} ${drained.stdout.trim()}`);
    }

    await tracker.stop();
    const store = await openStore(tracker.store);
    let check: DeliveryCheck;
    try {
      check = await checkDelivery(reports, store);
    } finally {
      await store.close();
    }
    if (check.problems.length > 0) log(`${scenario}: ${check.problems.join("; ")}\n${fleet.logs()}`);
    return {
      scenario,
      workers: options.workers,
      sessionsPerWorker,
      peakOpen,
      kills,
      spoolsDrainedAfterwards: unsettled.length,
      durationMs: performance.now() - began,
      ...check,
    };
  } finally {
    fleet?.kill();
    await tracker.stop().catch(() => {});
    rmSync(root, { recursive: true, force: true });
  }
}
