/**
 * A throwaway PostgreSQL server for tests: Debian's binaries, a fresh cluster
 * in a temp dir, listening on 127.0.0.1 on a free port with its unix socket
 * inside that dir, trust auth (loopback only), durability switched off.
 *
 * PostgreSQL refuses to run as root, and CI runs as root: then initdb, pg_ctl
 * and the server run as the `postgres` system user (or `nobody`) via runuser.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./ports.ts";

export interface PostgresServer {
  /** Superuser connection URL to the `postgres` database. */
  url: string;
  stop(): Promise<void>;
}

const SUPERUSER = "postgres";
const READY_DEADLINE_MS = 60_000;
const START_ATTEMPTS = 3;

function findBinDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, "bin", "initdb")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) {
    throw new Error(
      "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install them with `apt-get install postgresql` (CI does)",
    );
  }
  return join(root, newest, "bin");
}

interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

/** The unprivileged account to run the server as when we are root; undefined when we are not root. */
function unprivilegedUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = readFileSync("/etc/passwd", "utf8").split("\n");
  for (const name of ["postgres", "nobody"]) {
    const fields = passwd.find((line) => line.startsWith(`${name}:`))?.split(":");
    if (fields && fields.length >= 4) return { name, uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error("running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as");
}

function run(user: RunAs | undefined, cwd: string, file: string, args: string[]): string {
  const [command, argv] = user ? ["runuser", ["-u", user.name, "--", file, ...args]] : [file, args];
  return execFileSync(command, argv, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Servers still running in this process, for the last-resort cleanup below. */
const running = new Map<string, () => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const kill of running.values()) kill();
    running.clear();
  };
  // A test file that crashes or is interrupted must not leave a postmaster behind.
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAll();
      process.kill(process.pid, signal);
    });
  }
}

async function waitUntilReady(url: string, logFile: string, pidFile: string): Promise<void> {
  const started = Date.now();
  const deadline = started + READY_DEADLINE_MS;
  let lastError: unknown;
  while (Date.now() < deadline) {
    // The postmaster writes its pid file first thing and removes it when it gives up (say, the port is taken).
    if (Date.now() - started > 3_000 && !existsSync(pidFile)) {
      throw new Error(`PostgreSQL exited during startup\n${tail(logFile)}`);
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    try {
      await client.connect();
      await client.query("SELECT 1");
      return;
    } catch (error) {
      lastError = error;
    } finally {
      await client.end().catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `PostgreSQL did not accept connections within ${READY_DEADLINE_MS / 1000} s (last error: ${String(lastError)})\n${tail(logFile)}`,
  );
}

/** Starts a fresh PostgreSQL cluster; `stop()` shuts it down and deletes it. */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = findBinDir();
  const user = unprivilegedUser();
  const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-pg-"));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  const logFile = join(dir, "postgres.log");
  const pgCtl = join(bin, "pg_ctl");

  const pidFile = join(data, "postmaster.pid");
  const killNow = () => {
    // Read now rather than at start: a crash may come before the server is ready.
    let postmasterPid = 0;
    try {
      postmasterPid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    } catch {}
    if (Number.isInteger(postmasterPid) && postmasterPid > 0) {
      // Immediate shutdown: the postmaster takes its children down with it. Wait for it
      // (synchronously: this also runs in an exit handler) so it is not still writing
      // into the directory being removed.
      try {
        process.kill(postmasterPid, "SIGQUIT");
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          process.kill(postmasterPid, 0);
          sleepSync(50);
        }
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  installExitHook();
  running.set(dir, killNow);

  try {
    run(user, dir, join(bin, "initdb"), [
      "-D",
      data,
      "-U",
      SUPERUSER,
      "--auth=trust",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
    ]);
    let url = "";
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
      const options = [
        "-h 127.0.0.1",
        `-p ${port}`,
        `-k ${dir}`,
        // A test database need not survive a crash: skip the fsyncs.
        "-c fsync=off",
        "-c synchronous_commit=off",
        "-c full_page_writes=off",
        "-c max_connections=100",
      ].join(" ");
      try {
        // -W: do not wait here; readiness is proven below by a real connection.
        run(user, dir, pgCtl, ["-D", data, "-l", logFile, "-o", options, "-W", "start"]);
        await waitUntilReady(url, logFile, pidFile);
        break;
      } catch (error) {
        // Most likely the port was taken between choosing it and binding it.
        try {
          run(user, dir, pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"]);
        } catch {}
        if (attempt >= START_ATTEMPTS) throw error;
      }
    }
    let stopped = false;
    return {
      url,
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          run(user, dir, pgCtl, ["-D", data, "-m", "fast", "-w", "stop"]);
        } finally {
          running.delete(dir);
          killNow();
        }
      },
    };
  } catch (error) {
    running.delete(dir);
    killNow();
    throw error;
  }
}

/** A new empty database on the server for one test; returns its URL. */
export async function createDatabase(serverUrl: string, prefix = "test"): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    // The name is ours (hex), so quoting it as an identifier is enough.
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
