/**
 * The machine a reader of the docs types on, for the doc-command test: a
 * throwaway HOME (so the documented default state dir,
 * ~/.local/state/otel-shell-sessions, is used), the checkout's Node on PATH,
 * none of the developer's OTEL_* / SESSION_BUDDY_* / SHELL_SESSIONS_*
 * settings, and a project that installed the packed tarball. Commands run
 * through bash as written; long-running ones (`serve`, shells) are started,
 * driven and stopped here, within deadlines.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CommandResult,
  userEnv as checkoutEnv,
  copyPackage,
  type PackageCopy,
  ROOT,
  runCommand,
} from "../cli/package-copy.ts";
import { freePort } from "../helpers/ports.ts";
import { type PtyShell, spawnPty } from "../helpers/pty.ts";

export { ROOT };
export const DEADLINE_MS = 60_000;
/** The banner's session line: the id `show` takes and the trace id. */
export const BANNER = /session tracking on · session (\S+) · trace ([0-9a-f]{32})/;
/** A program whose only job is to open an admin shell, as `app.js` in the docs. */
const APP_JS = `const repl = require("node:repl");\nrepl.start({ prompt: "app> " });\n`;

const SCRUBBED = /^(OTEL_|SESSION_BUDDY_|SHELL_SESSIONS_|XDG_|npm_)/i;

export interface OpenShell {
  shell: PtyShell;
  sessionId: string;
  traceId: string;
  component: string;
}

/** Packed once per test process: a package copy and the tarball `npm pack` wrote in it. */
let packed: Promise<{ copy: PackageCopy; tarball: string; result: CommandResult }> | undefined;
export function packOnce(): Promise<{ copy: PackageCopy; tarball: string; result: CommandResult }> {
  packed ??= (async () => {
    const copy = copyPackage();
    process.on("exit", () => copy.remove());
    const result = await runCommand("npm", ["pack"], { cwd: copy.dir, env: userEnv(tmpdir()) });
    const tarball = result.stdout.trim().split("\n").at(-1) ?? "";
    return { copy, tarball, result };
  })();
  return packed;
}

/** npm's cache stays the machine's: a fresh HOME must not mean downloading every package again. */
const NPM_CACHE = process.env.npm_config_cache || join(homedir(), ".npm");

/** The environment of a terminal on a fresh account: HOME given, the checkout's Node first on PATH. */
export function userEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = checkoutEnv();
  for (const key of Object.keys(env)) if (SCRUBBED.test(key)) delete env[key];
  return {
    ...env,
    HOME: home,
    npm_config_cache: NPM_CACHE,
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
    npm_config_prefer_offline: "true",
    npm_config_yes: "false",
    ...extra,
  };
}

/**
 * "Your project": one per test process, shared by both documents, with the
 * packed tarball installed once (`npm install <tarball>` takes a while).
 */
const PROJECT = mkdtempSync(join(tmpdir(), "doc-project-"));
writeFileSync(join(PROJECT, "package.json"), '{ "name": "your-project", "private": true }\n');
writeFileSync(join(PROJECT, "app.js"), APP_JS);
process.on("exit", () => rmSync(PROJECT, { recursive: true, force: true }));
let installed: Promise<void> | undefined;

/** `npm install /path/to/…tgz` in the project, as the quick start's Install says; once. */
export function installProject(world: DocWorld): Promise<void> {
  installed ??= (async () => {
    const { copy, tarball, result } = await packOnce();
    if (result.code !== 0) throw new Error(`npm pack failed:\n${result.stderr}`);
    const install = await world.run(`npm install ${join(copy.dir, tarball)}`, PROJECT);
    if (install.code !== 0) throw new Error(`npm install of the tarball failed:\n${install.stderr}`);
    if (!existsSync(join(PROJECT, "node_modules/.bin/shell-sessions")))
      throw new Error("no shell-sessions bin installed");
  })();
  return installed;
}

export class DocWorld {
  readonly home = mkdtempSync(join(tmpdir(), "doc-home-"));
  readonly stateDir = join(this.home, ".local", "state", "otel-shell-sessions");
  readonly project = PROJECT;
  /** The Prometheus port of a tracker started with OTEL_METRICS_EXPORTER=prometheus. */
  trackerMetricsPort: number | undefined;
  /** Shells opened by a block, closed and checked when the block ends. */
  readonly open: OpenShell[] = [];
  /** Checks a block's commands leave for after its shells closed. */
  readonly afterClose: Array<() => Promise<void>> = [];
  /** Sessions of shells that closed, newest last. */
  readonly closed: OpenShell[] = [];
  trackerUrl: string | undefined;
  #tracker: ChildProcess | undefined;
  readonly #cleanups: Array<() => void> = [];

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    // Shells find the tracker the docs started, on the free port it was given.
    return userEnv(this.home, { ...(this.trackerUrl ? { SESSION_BUDDY_URL: this.trackerUrl } : {}), ...extra });
  }

  run(command: string, cwd = this.project, extra: NodeJS.ProcessEnv = {}): Promise<CommandResult> {
    return runCommand("bash", ["-c", command], { cwd, env: this.env(extra), timeoutMs: DEADLINE_MS });
  }

  /** A program in a terminal; killed with its whole process group when the test ends. */
  terminal(command: string, cwd = this.project, extra: NodeJS.ProcessEnv = {}): PtyShell {
    const shell = spawnPty(["-c", command], { file: "bash", cwd, env: this.env(extra) as Record<string, string> });
    this.#cleanups.push(() => killGroup(shell.pid));
    return shell;
  }

  /** Opens a shell program in a terminal and waits for its prompt and banner. */
  async openShell(
    command: string,
    prompt: string,
    component: string,
    extra: NodeJS.ProcessEnv = {},
  ): Promise<OpenShell> {
    const shell = this.terminal(command, this.project, extra);
    await shell.waitFor(prompt, { timeoutMs: DEADLINE_MS });
    const [, sessionId = "", traceId = ""] = await shell.waitFor(BANNER, { timeoutMs: DEADLINE_MS });
    const open = { shell, sessionId, traceId, component };
    this.open.push(open);
    return open;
  }

  /**
   * Starts `serve` as typed, on a free port rather than 8678 so that it can
   * run beside anything else; resolves once it listens.
   */
  async serve(command: string, extra: NodeJS.ProcessEnv = {}): Promise<string> {
    await this.stopTracker();
    const child = spawn("bash", ["-c", `${command} --port ${await freePort()}`], {
      cwd: this.project,
      env: this.env(extra),
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.#tracker = child;
    this.#cleanups.push(() => killGroup(child.pid));
    let log = "";
    this.trackerUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`serve did not listen within ${DEADLINE_MS} ms:\n${log}`)),
        DEADLINE_MS,
      );
      child.stderr?.on("data", (chunk: Buffer) => {
        log += chunk.toString();
        const url = /listening on (http:\/\/\S+)/.exec(log)?.[1];
        if (url) {
          clearTimeout(timer);
          resolve(url);
        }
      });
      child.on("exit", (code) => reject(new Error(`serve exited (${code}) before listening:\n${log}`)));
    });
    return this.trackerUrl;
  }

  async stopTracker(): Promise<void> {
    const child = this.#tracker;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    killGroup(child.pid, "SIGINT");
    await exited;
    this.#tracker = undefined;
    this.trackerUrl = undefined;
  }

  exists(...path: string[]): boolean {
    return existsSync(join(...path));
  }

  async dispose(): Promise<void> {
    await this.stopTracker().catch(() => {});
    for (const cleanup of this.#cleanups) cleanup();
    rmSync(this.home, { recursive: true, force: true });
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals = "SIGKILL"): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}
