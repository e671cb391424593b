/**
 * What an error says about the spool file: damaged (it gets salvaged, see
 * spool-repair.ts) or on a full disk (the events are counted as lost, and the
 * error tells how to make room).
 */
import { statfsSync } from "node:fs";
import { dirname } from "node:path";

// ---- SQLite errors: a damaged file, a full disk ----

const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_NOTADB = 26;

function sqliteCode(error: unknown): number | undefined {
  const code = (error as { errcode?: unknown } | null)?.errcode;
  return typeof code === "number" ? code & 0xff : undefined;
}

/** `PRAGMA quick_check` found the file damaged. */
export class SpoolDamagedError extends Error {}

export function isDamage(error: unknown): boolean {
  const code = sqliteCode(error);
  return error instanceof SpoolDamagedError || code === SQLITE_CORRUPT || code === SQLITE_NOTADB;
}

export function isFull(error: unknown): boolean {
  return sqliteCode(error) === SQLITE_FULL || (error as NodeJS.ErrnoException | null)?.code === "ENOSPC";
}

/** The disk holding the spool is full: says so, with the path, the free space and the fix. */
export class SpoolFullError extends Error {
  readonly path: string;
  constructor(path: string, cause: unknown) {
    super(
      `cannot write the spool ${path}: the disk (filesystem) holding it is full${freeSpace(path)} (${(cause as Error).message}); free space on that filesystem, or set SHELL_SESSIONS_STATE_DIR to a directory on another one`,
      { cause },
    );
    this.name = "SpoolFullError";
    this.path = path;
  }
}

function freeSpace(path: string): string {
  try {
    const fs = statfsSync(dirname(path));
    return `, ${fs.bavail * fs.bsize} of ${fs.blocks * fs.bsize} bytes free`;
  } catch {
    return "";
  }
}
