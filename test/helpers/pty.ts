/**
 * Driving a real shell through a real pseudo-terminal: spawn a program,
 * wait for text with a deadline, type lines and keys, send signals, and
 * wait for its exit.
 */
import pty from "@lydell/node-pty";
import { Waiters } from "./wait.ts";

/** Control sequences of a terminal (CSI, OSC, single-character escapes). */
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, "").replace(/\r/g, "");
}

export const KEY = {
  ctrlC: "\x03",
  ctrlD: "\x04",
  enter: "\r",
} as const;

export interface PtyExit {
  exitCode: number;
  /** Number of the signal that ended the process, 0 if none. */
  signal: number;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  cols?: number;
  rows?: number;
  /** Program to run; default: the Node.js running the tests. */
  file?: string;
}

export const DEFAULT_WAIT_MS = 30_000;

export class PtyShell {
  readonly #pty: pty.IPty;
  #raw = "";
  #exit: PtyExit | undefined;
  readonly #waiters = new Waiters();
  readonly exited: Promise<PtyExit>;

  constructor(args: string[], options: SpawnOptions = {}) {
    this.#pty = pty.spawn(options.file ?? process.execPath, args, {
      name: "xterm-256color",
      cols: options.cols ?? 120,
      rows: options.rows ?? 40,
      cwd: options.cwd ?? process.cwd(),
      env: { ...process.env, TERM: "xterm-256color", ...options.env } as Record<string, string>,
    });
    this.#pty.onData((data) => {
      this.#raw += data;
      this.#waiters.wake();
    });
    this.exited = new Promise((resolve) => {
      this.#pty.onExit((exit) => {
        this.#exit = { exitCode: exit.exitCode, signal: exit.signal ?? 0 };
        this.#waiters.wake();
        resolve(this.#exit);
      });
    });
  }

  get pid(): number {
    return this.#pty.pid;
  }

  /** Everything the program wrote so far, without terminal control sequences. */
  get output(): string {
    return stripAnsi(this.#raw);
  }

  /** A position in the output, for waiting only on what comes after it. */
  mark(): number {
    return this.output.length;
  }

  /**
   * Resolves with the first match of `pattern` in the output after `since`.
   * Rejects, with the output so far, if the deadline passes or the program exits first.
   */
  waitFor(pattern: RegExp | string, { since = 0, timeoutMs = DEFAULT_WAIT_MS } = {}): Promise<RegExpMatchArray> {
    const regex = typeof pattern === "string" ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : pattern;
    return this.#waiters.until(
      () => {
        const match = this.output.slice(since).match(regex);
        if (match) return match;
        if (this.#exit !== undefined) {
          throw new Error(`program exited (${JSON.stringify(this.#exit)}) before ${regex}; output:\n${this.output}`);
        }
        return undefined;
      },
      timeoutMs,
      () => new Error(`no ${regex} within ${timeoutMs} ms; output:\n${this.output}`),
    );
  }

  /** Types `line` and Enter. */
  type(line: string): void {
    this.#pty.write(`${line}${KEY.enter}`);
  }

  write(data: string): void {
    this.#pty.write(data);
  }

  kill(signal: NodeJS.Signals): void {
    this.#pty.kill(signal);
  }

  /** Waits for the exit, killing the program if it outlives the deadline. */
  async waitForExit(timeoutMs = DEFAULT_WAIT_MS): Promise<PtyExit> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.dispose();
        reject(new Error(`program did not exit within ${timeoutMs} ms; output:\n${this.output}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the program if it is still running. */
  dispose(): void {
    if (this.#exit === undefined) {
      try {
        this.#pty.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
}

export function spawnPty(args: string[], options: SpawnOptions = {}): PtyShell {
  return new PtyShell(args, options);
}
