/**
 * The drain helper's program, started detached by src/journal/helper.ts:
 * `node drain-helper.js <journal path> <parent pid>`.
 *
 * It waits, idle, until its parent is gone (the pipe on stdin closes), then
 * hands the parent's journal and any other orphaned journal to the spool,
 * and drains the spool until nothing deliverable is left or its time
 * (`SHELL_SESSIONS_HELPER_TIMEOUT_MS`, 15 minutes by default) runs out. It
 * logs to `drain-helper.log` beside the journals.
 *
 * Many helpers can wake at once (a host whose shells all died): each ingests
 * its journal, but only one at a time drains, holding a lock file beside the
 * spool. The holder looks at the spool once more after letting the lock go,
 * so events ingested while it was finishing are never left behind.
 */
import { closeSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { createLogger, type Logger, parseLogLevel } from "../log.ts";
import { SessionDelivery } from "./delivery.ts";
import { ingestJournals, processAlive } from "./ingest.ts";
import { type DeliveryOptions, ENV, resolveDeliveryOptions } from "./options.ts";
import { Spool } from "./spool.ts";

/**
 * Longest pause between passes while the tracker does not answer: short,
 * because one helper drains for every process of the host, and a tracker
 * that comes back should not wait long for it.
 */
const MAX_PAUSE_MS = 5_000;
/** How often the parent is looked for, in case the pipe cannot tell. */
const PARENT_POLL_MS = 5_000;

function parentGone(parentPid: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearInterval(poll);
      resolve();
    };
    process.stdin.on("end", done);
    process.stdin.on("close", done);
    process.stdin.on("error", done);
    process.stdin.resume();
    const poll = setInterval(() => {
      if (!processAlive(parentPid)) done();
    }, PARENT_POLL_MS);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** The drainer's lock: a file holding the pid of the helper that drains; a dead holder's lock is taken over. */
function takeLock(path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(path, "utf8"));
      } catch {
        continue;
      }
      if (processAlive(holder)) return false;
      try {
        unlinkSync(path);
      } catch {
        // Another helper took it over first.
      }
    }
  }
  return false;
}

function releaseLock(path: string): void {
  try {
    if (Number(readFileSync(path, "utf8")) === process.pid) unlinkSync(path);
  } catch {
    // Already gone.
  }
}

function openSpool(options: DeliveryOptions, log: Logger): Spool {
  return Spool.open(options.spoolPath, {
    limits: { maxEvents: options.spoolMaxEvents, maxBytes: options.spoolMaxBytes },
    onWarning: (m) => log.warn(m),
  });
}

function deliverable(options: DeliveryOptions, log: Logger): number {
  if (!Spool.exists(options.spoolPath)) return 0;
  const spool = openSpool(options, log);
  try {
    return spool.stats().pending;
  } finally {
    spool.close();
  }
}

/**
 * Each helper's deadline, as an empty file beside the lock whose name holds
 * it (`<lock>.until.<ms>.<pid>`). A helper that finds the lock held leaves at
 * once (one drainer per spool, not one process per dead shell), so the
 * drainer works until the latest deadline announced: a shell that died later
 * still gets its whole timeout, though an earlier helper does the work. One
 * file each, not lines in one file: a deadline that has passed can then be
 * removed by anyone, without racing a helper that is announcing its own.
 */
function announceDeadline(lock: string, deadline: number): void {
  try {
    closeSync(openSync(`${lock}.until.${deadline}.${process.pid}`, "w", 0o600));
  } catch {
    // Without the file each helper keeps to its own deadline.
  }
}

/** The latest deadline announced (at least `own`); files of deadlines already past are removed. */
function latestDeadline(lock: string, own: number): number {
  const prefix = `${basename(lock)}.until.`;
  let latest = own;
  try {
    for (const name of readdirSync(dirname(lock))) {
      if (!name.startsWith(prefix)) continue;
      const until = Number(name.slice(prefix.length).split(".")[0]);
      if (Number.isFinite(until) && until > Date.now()) latest = Math.max(latest, until);
      else rmSync(join(dirname(lock), name), { force: true });
    }
  } catch {
    // Unreadable directory: keep to our own deadline.
  }
  return latest;
}

/** Passes over the spool until nothing deliverable is left or the deadline. Returns what is left. */
async function drainUntil(options: DeliveryOptions, log: Logger, deadline: () => number): Promise<number> {
  const delivery = new SessionDelivery({ options, log, mode: "drain" });
  let pause = options.spoolRetryMs;
  try {
    for (;;) {
      const summary = await delivery.drain({ deadline: deadline() });
      if (summary.delivered > 0) log.info(`delivered ${summary.delivered} event(s)`);
      const left = deliverable(options, log);
      const end = deadline();
      if (left === 0 || Date.now() >= end) return left;
      pause = summary.delivered > 0 || summary.busy ? options.spoolRetryMs : Math.min(pause * 2, MAX_PAUSE_MS);
      await sleep(Math.min(pause, end - Date.now()));
    }
  } finally {
    await delivery.shutdown();
  }
}

function ingest(journalPath: string, options: DeliveryOptions, log: Logger): void {
  let spool: Spool | undefined;
  try {
    const ingested = ingestJournals(dirname(journalPath), () => (spool = openSpool(options, log)), log, journalPath);
    if (ingested.journals > 0) {
      log.info(`handed ${ingested.spooled} event(s) of ${ingested.journals} journal(s) to the spool`);
    }
  } finally {
    spool?.close();
  }
}

async function main(): Promise<void> {
  const [journalPath = "", parentText = ""] = process.argv.slice(2);
  const env = process.env;
  const log = createLogger(parseLogLevel(env[ENV.log]) ?? "info", (line) => {
    process.stderr.write(`${new Date().toISOString()} [${process.pid}] ${line}`);
  });
  await parentGone(Number(parentText));
  const resolved = resolveDeliveryOptions(env);
  if (!resolved.enabled) return;
  const options = resolved.options;
  const deadline = Date.now() + options.helperTimeoutMs;
  ingest(journalPath, options, log);

  const lock = `${options.spoolPath}.helper`;
  if (deliverable(options, log) === 0) return;
  announceDeadline(lock, deadline);
  const until = () => latestDeadline(lock, deadline);
  do {
    if (!takeLock(lock)) return;
    let left: number;
    try {
      left = await drainUntil(options, log, until);
    } finally {
      releaseLock(lock);
    }
    if (left > 0 && Date.now() >= until()) {
      log.warn(
        `gave up after ${Math.round(options.helperTimeoutMs / 1000)} s: ${left} event(s) stay in the spool ` +
          `${options.spoolPath}; the next shell on this host delivers them, or run: shell-sessions spool drain`,
      );
      return;
    }
    // Looked at again after letting the lock go: what a helper ingested meanwhile is not left behind.
  } while (deliverable(options, log) > 0);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `${new Date().toISOString()} [${process.pid}] drain helper failed: ${(error as Error)?.message}\n`,
    );
    process.exit(1);
  },
);
