/**
 * The tracker server as a real child process: `dist/cli/main.js serve` on a
 * free loopback port, with its own state dir, store, secret and lease.
 * `npm run build` must have run (npm test does it first).
 *
 *   const tracker = await startTracker({ lease: 2 });
 *   t.after(() => tracker.stop());
 *   // tracker.url, tracker.secret, tracker.store, tracker.pid
 *
 * `restart()` brings it back on the same port, store and secret (as a
 * Session-Buddy restart would); `kill(signal)` sends a signal and waits for
 * the process to exit.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The built CLI. `SHELL_SESSIONS_TEST_CLI` may name another entry (e.g. src/cli/main.ts, which Node runs
 * directly) so a developer can run these tests while a build rewrites dist/.
 */
export const CLI_PATH =
  process.env.SHELL_SESSIONS_TEST_CLI || fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const READY_PATTERN = /listening on (http:\/\/\S+)/;
const DEFAULT_READY_TIMEOUT_MS = 30_000;
const DEFAULT_STOP_TIMEOUT_MS = 20_000;

export interface TrackerProcessOptions {
  /** `sqlite:PATH` or a postgres:// URL. Default: a SQLite file in the state dir. */
  store?: string;
  /** The shared secret. Default: a fresh random one. `null`: no SESSION_BUDDY_SECRET in the environment. */
  secret?: string | null;
  /** Lease in seconds (fractions allowed). Default: the server's own default. */
  lease?: number;
  /** Extra environment; `undefined` values remove a variable. The server's own OTel SDK is off unless OTEL_* is given here. */
  env?: Record<string, string | undefined>;
  /** Extra arguments for `serve`. */
  args?: string[];
  /** Default: a fresh temp dir, removed by stop(). */
  stateDir?: string;
  readyTimeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function assertBuilt(): void {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first (npm test does)`);
}

/** A secret the server accepts: 43 characters of base64url. */
export function randomSecret(): string {
  return randomBytes(32).toString("base64url");
}

const alive = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test file that crashes must not leave servers behind.
  process.on("exit", () => {
    for (const child of alive) child.kill("SIGKILL");
  });
}

export function childEnv(base: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Tests decide the server's configuration; none leaks in from the developer's shell.
  for (const key of Object.keys(env)) {
    if (key.startsWith("OTEL_") || key.startsWith("SESSION_BUDDY_") || key.startsWith("SHELL_SESSIONS_"))
      delete env[key];
  }
  env.OTEL_SDK_DISABLED = "true";
  for (const [key, value] of Object.entries(base)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  if (
    Object.keys(base).some((k) => k.startsWith("OTEL_") && k !== "OTEL_SDK_DISABLED") &&
    !("OTEL_SDK_DISABLED" in base)
  ) {
    delete env.OTEL_SDK_DISABLED;
  }
  return env;
}

export class TrackerProcess {
  readonly stateDir: string;
  readonly secret: string | undefined;
  readonly store: string;
  #options: TrackerProcessOptions;
  #ownsStateDir: boolean;
  #child: ChildProcess | undefined;
  #exited: Promise<ExitStatus> = Promise.resolve({ code: null, signal: null });
  #url = "";
  #port = 0;
  #log = "";

  constructor(options: TrackerProcessOptions) {
    this.#options = options;
    this.#ownsStateDir = options.stateDir === undefined;
    this.stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), "otel-shell-sessions-tracker-"));
    this.secret = options.secret === null ? undefined : (options.secret ?? randomSecret());
    this.store = options.store ?? `sqlite:${join(this.stateDir, "tracker.db")}`;
  }

  /** The MCP endpoint, e.g. http://127.0.0.1:41234/mcp. */
  get url(): string {
    return this.#url;
  }

  get port(): number {
    return this.#port;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  /** Everything the server wrote to stderr so far (its log). */
  get log(): string {
    return this.#log;
  }

  /** Resolves when the current process exits. */
  get exited(): Promise<ExitStatus> {
    return this.#exited;
  }

  get env(): NodeJS.ProcessEnv {
    return childEnv({
      SHELL_SESSIONS_STATE_DIR: this.stateDir,
      ...(this.secret !== undefined ? { SESSION_BUDDY_SECRET: this.secret } : {}),
      ...this.#options.env,
    });
  }

  async start(port = 0): Promise<void> {
    assertBuilt();
    killAllOnExit();
    const args = [CLI_PATH, "serve", "--host", "127.0.0.1", "--port", String(port), "--store", this.store];
    if (this.#options.lease !== undefined) args.push("--lease", String(this.#options.lease));
    args.push(...(this.#options.args ?? []));
    const child = spawn(process.execPath, args, { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    alive.add(child);
    this.#exited = new Promise<ExitStatus>((resolve) => {
      child.once("exit", (code, signal) => {
        alive.delete(child);
        resolve({ code, signal });
      });
    });
    child.stdout?.resume();
    const timeoutMs = this.#options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`tracker was not ready within ${timeoutMs} ms; its log:\n${this.#log}`));
      }, timeoutMs);
      child.stderr?.setEncoding("utf8");
      child.stderr?.on("data", (chunk: string) => {
        this.#log += chunk;
        const m = READY_PATTERN.exec(this.#log);
        if (m?.[1] && this.#url === "") {
          clearTimeout(timer);
          this.#url = m[1];
          this.#port = Number(new URL(m[1]).port);
          resolve();
        }
      });
      void this.#exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(
          new Error(`tracker exited (code ${code}, signal ${signal}) before it was ready; its log:\n${this.#log}`),
        );
      });
    });
  }

  /** SIGTERM, then wait for the exit (SIGKILL after a deadline). Removes the state dir it created. */
  async stop(): Promise<ExitStatus> {
    const status = await this.#terminate("SIGTERM");
    // Retried: a drain helper of a shell that used this state dir may still be writing in it.
    if (this.#ownsStateDir) rmSync(this.stateDir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
    return status;
  }

  /** Sends `signal` and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ExitStatus> {
    return this.#terminate(signal);
  }

  /** Stops (SIGTERM) and starts again on the same port, store and secret. */
  async restart(): Promise<void> {
    const port = this.#port;
    await this.#terminate("SIGTERM");
    this.#url = "";
    this.#log = "";
    // The old process has released the port; another process taking it in between is unlikely, so retry briefly.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start(port);
        return;
      } catch (error) {
        if (attempt >= 5 || !/EADDRINUSE/.test(String(error))) throw error;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }

  async #terminate(signal: NodeJS.Signals): Promise<ExitStatus> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return this.#exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), DEFAULT_STOP_TIMEOUT_MS);
    const status = await this.#exited;
    clearTimeout(timer);
    return status;
  }
}

/** Starts a tracker process and waits until it listens. */
export async function startTracker(options: TrackerProcessOptions = {}): Promise<TrackerProcess> {
  const tracker = new TrackerProcess(options);
  try {
    await tracker.start();
  } catch (error) {
    await tracker.stop();
    throw error;
  }
  return tracker;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `shell-sessions ARGS` to completion with the given environment (see childEnv). */
export function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 30_000,
): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_PATH, ...args],
      { env: childEnv(env), timeout: timeoutMs, encoding: "utf8" },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
