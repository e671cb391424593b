/**
 * The write-ahead journal of one process: every shell's start and end on
 * local disk before anything else happens to them.
 *
 * Why a file of JSON lines and not the SQLite spool: the start must be
 * durable before the prompt appears, and opening SQLite (and loading the code
 * around it) costs tens of milliseconds there, while an append and an
 * fdatasync cost well under one. Starts and ends are synced; the lines that
 * only say an event was answered for (ack, spooled) are not, since losing one
 * costs at most a resend that the tracker de-duplicates by event_id.
 *
 * A journal whose events have all been answered for is removed when its
 * process leaves; any other is left for the drain helper (helper.ts), which
 * outlives the process and hands what is left to the spool.
 */
import { stateDir } from "../state-dir.ts";
import { type DrainHelper, spawnDrainHelper } from "./helper.ts";
import type { JournalLine } from "./records.ts";

// Built-ins through process.getBuiltinModule: this module is on the way to the first prompt (see ids.ts).
const { closeSync, fdatasyncSync, mkdirSync, openSync, unlinkSync, writeSync } = process.getBuiltinModule("node:fs");
const { join } = process.getBuiltinModule("node:path");

export const JOURNAL_DIR_NAME = "journal";
export const JOURNAL_SUFFIX = ".jsonl";

/** `<state dir>/journal`: one file per process that opened a shell. */
export function journalDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), JOURNAL_DIR_NAME);
}

/** The pid a journal's file name starts with (`<pid>-<nonce>.jsonl`). */
export function journalPid(fileName: string): number | undefined {
  const match = /^(\d+)-[0-9a-f]+\.jsonl$/.exec(fileName);
  return match ? Number(match[1]) : undefined;
}

export class Journal {
  readonly path: string;
  readonly #env: NodeJS.ProcessEnv;
  #fd: number | undefined;
  /** Events written and not yet acknowledged or spooled. */
  readonly #open = new Set<string>();
  /** Shells started and not yet ended. */
  readonly #live = new Set<string>();
  #spooledAny = false;
  #failed = false;
  #closed = false;
  #helper: DrainHelper | undefined;

  constructor(env: NodeJS.ProcessEnv, nonce: string) {
    this.#env = env;
    this.path = join(journalDir(env), `${process.pid}-${nonce}${JOURNAL_SUFFIX}`);
  }

  /** True while some event of this journal has not been answered for (or went to the spool). */
  get needsHelper(): boolean {
    return this.#open.size > 0 || this.#spooledAny;
  }

  /** True once no shell is open and every event has been acknowledged. */
  get done(): boolean {
    return this.#live.size === 0 && !this.needsHelper;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Appends a line; start and end lines are synced to disk before this returns. */
  write(line: JournalLine): void {
    if (line.k === "start" || line.k === "end") this.#open.add(line.e);
    if (line.k === "start") this.#live.add(line.s);
    else if (line.k === "end") this.#live.delete(line.s);
    else if (line.k === "ack") this.#open.delete(line.e);
    else if (line.k === "spooled") {
      this.#open.delete(line.e);
      this.#spooledAny = true;
    }
    if (this.#closed) return;
    const durable = line.k !== "ack" && line.k !== "spooled";
    try {
      this.#fd ??= this.#openFile();
      writeSync(this.#fd, `${JSON.stringify(line)}\n`);
      if (durable) fdatasyncSync(this.#fd);
    } catch (error) {
      this.#fail(error);
    }
  }

  /** Starts the drain helper unless one is already waiting for this process. */
  ensureHelper(): void {
    if (this.#helper?.alive || this.#closed || this.#fd === undefined) return;
    try {
      this.#helper = spawnDrainHelper(this.path, this.#env);
    } catch (error) {
      this.#fail(error, "could not start the drain helper");
    }
  }

  /**
   * When every event is answered for: closes and removes the file, and lets
   * the helper go. Returns whether it did. `force` closes the file anyway
   * (the process is leaving), leaving it and the helper to finish the work.
   */
  retire(force = false): boolean {
    if (this.#closed) return true;
    const done = this.done;
    if (!done && !force) return false;
    if (!done) this.ensureHelper();
    this.#closed = true;
    if (this.#fd !== undefined) {
      try {
        closeSync(this.#fd);
      } catch {
        // Closed already by the process going down.
      }
    }
    if (done) {
      try {
        unlinkSync(this.path);
      } catch {
        // Never created, or already ingested.
      }
      this.#helper?.release();
    }
    return done;
  }

  #openFile(): number {
    mkdirSync(journalDir(this.#env), { recursive: true, mode: 0o700 });
    // 0600 whatever the umask or the directory's mode: the lines name users, homes and directories.
    return openSync(this.path, "a", 0o600);
  }

  #fail(error: unknown, what = `cannot write the journal ${this.path}`): void {
    if (this.#failed) return;
    this.#failed = true;
    const reason = (error as NodeJS.ErrnoException).code === "ENOSPC" ? "the disk is full" : (error as Error).message;
    // An audit record that cannot be written ahead must not fail silently; said once per process.
    try {
      process.stderr.write(
        `otel-shell-sessions: ${what} (${reason}); sessions are still delivered while this process runs\n`,
      );
    } catch {
      // stderr is gone too.
    }
  }
}
