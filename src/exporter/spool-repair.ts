/**
 * Salvaging a damaged spool file: replacing it with a fresh one that holds
 * every row that could be read from its pages (see spool-salvage.ts), one
 * process at a time, and keeping the damaged one aside.
 */
import { closeSync, linkSync, openSync, renameSync, rmSync } from "node:fs";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import type { SalvageRecord } from "./spool.ts";
import { isDamage } from "./spool-errors.ts";
import { type SalvagedRows, scanDatabaseFile, sortSpoolRecords, spoolRowCount } from "./spool-salvage.ts";
import { type Connection, connect, makePrivate, PRIVATE, rollback, statOf } from "./spool-schema.ts";

const LOCK_WAIT_MS = 10_000;
const LOCK_STALE_MS = 30_000;

/** Opens the spool file at `path`, salvaging it first when it is damaged. */
export function openConnection(path: string, warn: (m: string) => void): Connection {
  try {
    return connect(path, warn);
  } catch (error) {
    if (!isDamage(error)) throw error;
    return salvageAndConnect(path, error, warn);
  }
}

/** Salvages the damaged file, unless another process did so meanwhile; returns a connection to the fresh one. */
export function salvageAndConnect(path: string, cause: unknown, warn: (m: string) => void): Connection {
  let record: SalvageRecord | undefined;
  const conn = withSalvageLock(path, () => {
    try {
      return connect(path, warn);
    } catch (error) {
      if (!isDamage(error)) throw error;
    }
    record = salvageFile(path, (cause as Error).message, warn);
    return connect(path, warn);
  });
  if (record) warn(describeSalvage(path, record));
  return conn;
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs `run` holding the salvage lock (a file created exclusively), so that one process at a time salvages. */
function withSalvageLock<T>(path: string, run: () => T): T {
  const lock = `${path}.salvage-lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      closeSync(openSync(lock, "wx", PRIVATE));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const held = statOf(lock);
      // A process that died while salvaging leaves its lock behind.
      if ((held && Date.now() - held.mtimeMs > LOCK_STALE_MS) || Date.now() > deadline) rmSync(lock, { force: true });
      else sleep(20);
    }
  }
  try {
    return run();
  } finally {
    rmSync(lock, { force: true });
  }
}

/**
 * Replaces the damaged file at `path` with a fresh one holding every row that
 * could be read from it; the damaged file (and its -wal, -shm) is kept aside.
 * A write lock on the damaged file, where it can still be taken, keeps other
 * processes' writes out until the swap is done.
 */
function salvageFile(path: string, reason: string, warn: (m: string) => void): SalvageRecord {
  const guard = new DatabaseSync(path);
  try {
    try {
      guard.exec("PRAGMA busy_timeout = 5000");
      guard.exec("BEGIN IMMEDIATE");
    } catch {
      // Too damaged to lock: too damaged for anyone to write either.
    }
    const rows = sortSpoolRecords(scanDatabaseFile(path, spoolRowCount).records);
    const fresh = `${path}.salvage-${process.pid}`;
    for (const suffix of ["", "-wal", "-shm"]) rmSync(fresh + suffix, { force: true });
    const aside = `${path}.corrupt-${Date.now()}`;
    const record = writeSalvaged(fresh, rows, { at: Date.now(), aside, reason }, warn);
    for (const suffix of ["-wal", "-shm"]) {
      if (statOf(path + suffix)) renameSync(path + suffix, aside + suffix);
    }
    if (statOf(path)) linkSync(path, aside);
    for (const suffix of ["-wal", "-shm"]) rmSync(fresh + suffix, { force: true });
    renameSync(fresh, path);
    for (const suffix of ["", "-wal", "-shm"]) makePrivate(aside + suffix, false, warn);
    return record;
  } finally {
    rollback(guard);
    guard.close();
  }
}

/** Writes the salvaged rows to a new spool file at `fresh`; what the damaged file held but could not be read is lost. */
function writeSalvaged(
  fresh: string,
  rows: SalvagedRows,
  about: Pick<SalvageRecord, "at" | "aside" | "reason">,
  warn: (m: string) => void,
): SalvageRecord {
  const { db } = connect(fresh, warn);
  try {
    db.exec("BEGIN IMMEDIATE");
    const insert = (sql: string, list: SQLInputValue[][]) => {
      const statement = db.prepare(sql);
      return list.reduce((n, values) => n + Number(statement.run(...values).changes), 0);
    };
    const salvaged = insert(`INSERT OR IGNORE INTO events VALUES (${Array(17).fill("?").join(", ")})`, rows.events);
    insert("INSERT OR IGNORE INTO sessions VALUES (?, ?, ?)", rows.sessions);
    insert("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?)", rows.quarantine);
    insert("INSERT OR IGNORE INTO delivered VALUES (?, ?)", rows.delivered);
    // The damaged file's own count of its rows (kept by triggers) tells how many could not be read.
    const held = rows.counters.get("waiting");
    const record: SalvageRecord = {
      ...about,
      salvaged,
      lost: held === undefined ? null : Math.max(0, held - salvaged),
    };
    insert("INSERT INTO salvages VALUES (?, ?, ?, ?, ?)", [
      ...rows.salvages,
      [record.at, record.aside, record.salvaged, record.lost, record.reason],
    ]);
    const setCounter = db.prepare(
      "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
    );
    setCounter.run("lost", (rows.counters.get("lost") ?? 0) + (record.lost ?? 0));
    setCounter.run("salvaged", (rows.counters.get("salvaged") ?? 0) + salvaged);
    db.exec("COMMIT");
    return record;
  } catch (error) {
    rollback(db);
    throw error;
  } finally {
    db.close();
  }
}

function describeSalvage(path: string, r: SalvageRecord): string {
  const lost =
    r.lost === null
      ? "how many events it held cannot be known (nothing in it says), so none are counted as lost"
      : `${r.lost} event(s) could not be read and are counted as lost`;
  return `the spool ${path} was damaged (${r.reason}): salvaged ${r.salvaged} event(s) into a fresh spool; ${lost}; the damaged file is kept at ${r.aside}`;
}
