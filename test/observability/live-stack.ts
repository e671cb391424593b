/**
 * The whole system running on loopback, as a user would run it, so the
 * dashboard, the alert rules, the metrics reference and the OTLP export can
 * be checked against what the code really emits:
 *
 *   - a tracker (`shell-sessions serve`, short lease);
 *   - `shell-sessions shell` in a PTY, left open (an active session);
 *   - an admin app serving shells over a socket, started with
 *     `--import otel-shell-sessions/register`, with two sessions ended
 *     (`.exit`, and the client hanging up);
 *   - the same app pointed at a tracker that is down, with a one-event
 *     spool: its circuit opens, one event waits in the spool, others are lost;
 *   - a second `shell-sessions shell`, SIGKILLed: the tracker marks its
 *     session abandoned when the lease runs out;
 *   - one tool call for an unknown session (an error on the tracker side).
 *
 * Every process exports metrics both for Prometheus scraping
 * (OTEL_METRICS_EXPORTER=prometheus) and over OTLP/HTTP, and traces over
 * OTLP/HTTP, to a test receiver. Debian's Prometheus scrapes all four live
 * processes every second and evaluates prometheus-rules.yaml.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mintToken } from "../../src/auth/jwt.ts";
import { connectHttp } from "../helpers/mcp-client.ts";
import { type OtlpReceiver, startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { freePort } from "../helpers/ports.ts";
import { type PrometheusServer, startPrometheus } from "../helpers/prometheus.ts";
import { type PtyShell, spawnPty } from "../helpers/pty.ts";
import { CLI_PATH, childEnv, runCli, startTracker, type TrackerProcess } from "../helpers/tracker.ts";
import { waitFor } from "../helpers/wait.ts";

const REGISTER = fileURLToPath(new URL("../../dist/register.js", import.meta.url));
const SOCKET_ADMIN = fileURLToPath(new URL("./fixtures/socket-admin.mjs", import.meta.url));
export const RULES_FILE = fileURLToPath(new URL("../../prometheus-rules.yaml", import.meta.url));
const BANNER = /session tracking on · session ([0-9a-f-]{36}) · trace ([0-9a-f]{32})/;
const WAIT_MS = 30_000;
/** Lease of the test tracker: long enough for a loaded machine, short enough to wait for. */
const LEASE_SECONDS = 3;

export const COMPONENT_DEMO = "opsdemo";
export const COMPONENT_APP = "billing";
export const COMPONENT_DEGRADED = "billing-dr";

export interface SessionSeen {
  sessionId: string;
  traceId: string;
}

export interface LiveStack {
  tracker: TrackerProcess;
  prometheus: PrometheusServer;
  otlp: OtlpReceiver;
  /** Scrape targets by job: tracker, shell, admin-app, admin-app-degraded. */
  instances: Record<string, string>;
  /** Sessions of the admin app: ended with `.exit`, and by the client hanging up. */
  exitCommand: SessionSeen;
  hangUp: SessionSeen;
  /** The demo shell's session, still open. */
  open: SessionSeen;
  /** The session of the shell that was SIGKILLed. */
  killed: SessionSeen;
  stop(): Promise<void>;
}

class Cleanup {
  readonly #steps: (() => Promise<unknown> | unknown)[] = [];
  add(step: () => Promise<unknown> | unknown): void {
    this.#steps.unshift(step);
  }
  async run(): Promise<void> {
    for (const step of this.#steps) {
      try {
        await step();
      } catch {
        // Keep cleaning up: one failed step must not leave the others running.
      }
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Starts the socket admin app and resolves with its shell port. */
async function startAdminApp(env: NodeJS.ProcessEnv, cleanup: Cleanup): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--import", REGISTER, SOCKET_ADMIN], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  cleanup.add(() => stopChild(child));
  let output = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  child.stdout?.setEncoding("utf8");
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`admin app did not start within ${WAIT_MS} ms:\n${output}`)),
      WAIT_MS,
    );
    child.stdout?.on("data", (chunk: string) => {
      output += chunk;
      const m = /admin shells on port (\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`admin app exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
  return { child, port };
}

/**
 * One admin session over the app's socket: waits for the banner, evaluates
 * `input`, then leaves with `.exit` or by hanging up.
 */
async function adminSession(port: number, input: string, leave: "exit" | "hang-up"): Promise<SessionSeen> {
  const socket = connect(port, "127.0.0.1");
  socket.setEncoding("utf8");
  let output = "";
  const waitFor = (pattern: RegExp, since = 0) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = pattern.exec(output.slice(since));
        if (m) {
          clearTimeout(timer);
          socket.off("data", check);
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        socket.off("data", check);
        reject(new Error(`admin session: no ${pattern} within ${WAIT_MS} ms; output:\n${output}`));
      }, WAIT_MS);
      socket.on("data", check);
      check();
    });
  socket.on("data", (chunk: string) => {
    output += chunk;
  });
  const closed = once(socket, "close");
  try {
    const [, sessionId, traceId] = await waitFor(BANNER);
    const mark = output.length;
    socket.write(`${input}\n`);
    await waitFor(/admin> /, mark);
    if (leave === "exit") socket.write(".exit\n");
    else socket.end();
    await closed;
    return { sessionId: sessionId as string, traceId: traceId as string };
  } finally {
    socket.destroy();
  }
}

async function demoShell(env: NodeJS.ProcessEnv, cleanup: Cleanup): Promise<{ shell: PtyShell; seen: SessionSeen }> {
  const shell = spawnPty([CLI_PATH, "shell", "--component", COMPONENT_DEMO], { env });
  cleanup.add(() => shell.dispose());
  const [, sessionId, traceId] = (await shell.waitFor(BANNER, { timeoutMs: WAIT_MS })) as unknown as string[];
  await shell.waitFor(`${COMPONENT_DEMO}>`, { timeoutMs: WAIT_MS });
  return { shell, seen: { sessionId: sessionId as string, traceId: traceId as string } };
}

/**
 * Whether the tracker has stored the session of this trace, read from its
 * store with `shell-sessions list` (with a lease too long to expire anything:
 * abandoning is the tracker's job here).
 */
async function trackerHas(tracker: TrackerProcess, traceId: string): Promise<boolean> {
  const listed = await runCli(["list", "--store", tracker.store, "--json", "--lease", "604800"], {
    SHELL_SESSIONS_STATE_DIR: tracker.stateDir,
  });
  if (listed.code !== 0) throw new Error(`shell-sessions list failed: ${listed.stderr}`);
  return (JSON.parse(listed.stdout) as { trace_id: string }[]).some((s) => s.trace_id === traceId);
}

export async function startLiveStack(): Promise<LiveStack> {
  const cleanup = new Cleanup();
  try {
    const otlp = await startOtlpReceiver();
    cleanup.add(() => otlp.close());
    const ports = {
      tracker: await freePort(),
      shell: await freePort(),
      app: await freePort(),
      degraded: await freePort(),
      deadTracker: await freePort(),
    };
    const instances = {
      tracker: `127.0.0.1:${ports.tracker}`,
      shell: `127.0.0.1:${ports.shell}`,
      "admin-app": `127.0.0.1:${ports.app}`,
      "admin-app-degraded": `127.0.0.1:${ports.degraded}`,
    };

    const telemetry = (metricsPort: number) => ({
      OTEL_METRICS_EXPORTER: "prometheus,otlp",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      OTEL_METRIC_EXPORT_INTERVAL: "1000",
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_BSP_SCHEDULE_DELAY: "200",
      OTEL_LOGS_EXPORTER: "none",
    });

    const tracker = await startTracker({ lease: LEASE_SECONDS, env: telemetry(ports.tracker) });
    cleanup.add(() => tracker.stop());

    const prometheus = await startPrometheus({
      targets: Object.entries(instances).map(([job, address]) => ({ job, address })),
      ruleFiles: [RULES_FILE],
    });
    cleanup.add(() => prometheus.stop());

    const states: string[] = [];
    const shellEnv = (metricsPort: number, extra: Record<string, string>) => {
      const state = mkdtempSync(join(tmpdir(), "otel-shell-sessions-live-"));
      states.push(state);
      return childEnv({
        ...telemetry(metricsPort),
        SHELL_SESSIONS_STATE_DIR: state,
        SESSION_BUDDY_URL: tracker.url,
        SESSION_BUDDY_SECRET: tracker.secret,
        // Well inside the tracker's lease, so only the killed shell's session is abandoned.
        SHELL_SESSIONS_HEARTBEAT_MS: "500",
        ...extra,
      });
    };
    cleanup.add(() => {
      for (const state of states) rmSync(state, { recursive: true, force: true });
    });

    // The admin app: two sessions, ended two ways; the process stays up.
    const app = await startAdminApp(shellEnv(ports.app, { SHELL_SESSIONS_COMPONENT: COMPONENT_APP }), cleanup);
    const exitCommand = await adminSession(app.port, "inventory.widgets + inventory.gadgets", "exit");
    const hangUp = await adminSession(app.port, "Object.keys(inventory)", "hang-up");

    // The same app against a tracker that is down, with a spool that holds one event.
    const degraded = await startAdminApp(
      shellEnv(ports.degraded, {
        SHELL_SESSIONS_COMPONENT: COMPONENT_DEGRADED,
        SESSION_BUDDY_URL: `http://127.0.0.1:${ports.deadTracker}/mcp`,
        SHELL_SESSIONS_SPOOL_MAX_EVENTS: "1",
        SHELL_SESSIONS_RETRY_ATTEMPTS: "1",
        SHELL_SESSIONS_BREAKER_FAILURES: "1",
        SHELL_SESSIONS_BREAKER_RESET_MS: "3600000",
      }),
      cleanup,
    );
    await adminSession(degraded.port, "inventory.widgets", "exit");

    // The demo shell, left open.
    const open = (await demoShell(shellEnv(ports.shell, {}), cleanup)).seen;

    // Another demo shell, killed once the tracker has its session.
    const victim = await demoShell(shellEnv(await freePort(), { OTEL_METRICS_EXPORTER: "otlp" }), cleanup);
    await waitFor(
      () => "the tracker to record the second demo shell's session",
      async () => ((await trackerHas(tracker, victim.seen.traceId)) ? true : undefined),
      WAIT_MS,
      250,
    );
    victim.shell.kill("SIGKILL");
    await victim.shell.waitForExit();

    // A call the tracker answers with an error: ending a session it does not know.
    const token = await mintToken({ secret: tracker.secret ?? "", component: COMPONENT_DEMO });
    const client = await connectHttp(tracker.url, { token });
    try {
      const { result } = await client.call("track_session_end", {
        session_id: "no-such-session",
        timestamp: new Date().toISOString(),
        event_type: "session_end",
        metadata: {},
      });
      if (result.status !== "not_found") throw new Error(`expected not_found, got ${JSON.stringify(result)}`);
    } finally {
      await client.close();
    }

    return {
      tracker,
      prometheus,
      otlp,
      instances,
      exitCommand,
      hangUp,
      open,
      killed: victim.seen,
      stop: () => cleanup.run(),
    };
  } catch (error) {
    await cleanup.run();
    throw error;
  }
}
