/**
 * A fleet of shell workers (see shell-worker.ts): forks them, drives them
 * through opening and closing their sessions, collects their reports, and
 * checks what they emitted against what the tracker stored.
 */
import { type ChildProcess, fork } from "node:child_process";
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SessionRecord } from "../../../src/contract/schemas.ts";
import type { SessionStore } from "../../../src/store/types.ts";
import { childEnv } from "../../helpers/tracker.ts";
import type { WorkerCommand, WorkerMessage, WorkerReport } from "./protocol.ts";
import { type Summary, summarize } from "./stats.ts";

const WORKER_PATH = fileURLToPath(new URL("./shell-worker.ts", import.meta.url));
const DEFAULT_STEP_TIMEOUT_MS = 120_000;

export interface FleetOptions {
  workers: number;
  sessionsPerWorker: number;
  /** Environment of every worker: the tracker's URL or command, the secret, delivery settings. */
  env: Record<string, string | undefined>;
  /** Each worker gets its own state dir (and so its own spool) under this directory. */
  root: string;
  component?: string;
  /** When set, each worker's log also goes to `<logDir>/worker-<i>.log`, every line stamped with the time it arrived. */
  logDir?: string;
}

/** Settings every fleet uses: the SDK on with no OTLP exporters, quiet shells. */
export function workerBaseEnv(): Record<string, string> {
  return {
    OTEL_TRACES_EXPORTER: "none",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    SHELL_SESSIONS_BANNER: "off",
    SHELL_SESSIONS_LOG: "warn",
  };
}

class Worker {
  readonly index: number;
  readonly stateDir: string;
  readonly child: ChildProcess;
  #inbox: WorkerMessage[] = [];
  #wake: (() => void) | undefined;
  #stderr = "";
  #exit: string | undefined;

  constructor(index: number, stateDir: string, env: NodeJS.ProcessEnv, logDir?: string) {
    this.index = index;
    this.stateDir = stateDir;
    this.child = fork(WORKER_PATH, [], { env, execArgv: [], stdio: ["ignore", "ignore", "pipe", "ipc"] });
    this.child.stderr?.setEncoding("utf8");
    this.child.stderr?.on("data", (chunk: string) => {
      // Keep the tail only: a worker that logs a lot must not fill the parent's memory.
      this.#stderr = (this.#stderr + chunk).slice(-20_000);
      if (logDir !== undefined) {
        const stamp = new Date().toISOString();
        const lines = chunk.split("\n").filter((line) => line !== "");
        appendFileSync(join(logDir, `worker-${index}.log`), lines.map((line) => `${stamp} ${line}\n`).join(""));
      }
    });
    this.child.on("message", (message: WorkerMessage) => {
      this.#inbox.push(message);
      this.#wake?.();
    });
    this.child.once("exit", (code, signal) => {
      this.#exit = `exited (code ${code}, signal ${signal})`;
      this.#wake?.();
    });
  }

  get log(): string {
    return this.#stderr;
  }

  send(command: WorkerCommand): void {
    this.child.send(command);
  }

  /** The next message of `type`, or a rejection naming what went wrong (exit, failure, deadline). */
  async next<T extends WorkerMessage["type"]>(
    type: T,
    timeoutMs = DEFAULT_STEP_TIMEOUT_MS,
  ): Promise<Extract<WorkerMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const failed = this.#inbox.find((m) => m.type === "failed");
      if (failed && failed.type === "failed") throw new Error(`worker ${this.index} failed: ${failed.error}`);
      const i = this.#inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.#inbox.splice(i, 1)[0] as Extract<WorkerMessage, { type: T }>;
      if (this.#exit !== undefined) {
        throw new Error(`worker ${this.index} ${this.#exit} before "${type}"; its log:\n${this.#stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`worker ${this.index}: no "${type}" within ${timeoutMs} ms; its log:\n${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }

  /** Resolves when the process has exited. */
  exited(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => this.child.once("exit", () => resolve()));
  }
}

export class Fleet {
  readonly options: FleetOptions;
  readonly workers: Worker[];

  private constructor(options: FleetOptions, workers: Worker[]) {
    this.options = options;
    this.workers = workers;
  }

  /** Forks the workers and waits until each has its telemetry running. */
  static async start(options: FleetOptions): Promise<Fleet> {
    const workers: Worker[] = [];
    for (let index = 0; index < options.workers; index++) {
      const stateDir = join(options.root, `worker-${index}`);
      mkdirSync(stateDir, { recursive: true });
      const env = childEnv({
        ...workerBaseEnv(),
        ...options.env,
        SHELL_SESSIONS_STATE_DIR: stateDir,
        STRESS_WORKER_CONFIG: JSON.stringify({ index, component: options.component ?? "stress" }),
      });
      workers.push(new Worker(index, stateDir, env, options.logDir));
    }
    const fleet = new Fleet(options, workers);
    try {
      await Promise.all(workers.map((w) => w.next("ready")));
    } catch (error) {
      fleet.kill();
      throw error;
    }
    return fleet;
  }

  get sessions(): number {
    return this.options.workers * this.options.sessionsPerWorker;
  }

  get stateDirs(): string[] {
    return this.workers.map((w) => w.stateDir);
  }

  /** Every worker opens its sessions, spread over `spreadMs`; resolves when all are open (their spans started). */
  async open(spreadMs: number): Promise<number> {
    for (const w of this.workers) w.send({ type: "open", count: this.options.sessionsPerWorker, spreadMs });
    const opened = await Promise.all(this.workers.map((w) => w.next("opened")));
    return opened.reduce((n, m) => n + m.open, 0);
  }

  /** Every worker closes `count` of its open sessions, spread over `spreadMs`; resolves with how many are still open. */
  async close(count: number, spreadMs: number): Promise<number> {
    for (const w of this.workers) w.send({ type: "close", count, spreadMs });
    const closed = await Promise.all(this.workers.map((w) => w.next("closed")));
    return closed.reduce((n, m) => n + m.open, 0);
  }

  /** Each worker opens and closes `count` sessions one at a time, waiting for each event's acknowledgement. */
  async sequence(count: number, perEventTimeoutMs = 30_000): Promise<void> {
    for (const w of this.workers) w.send({ type: "sequence", count, timeoutMs: perEventTimeoutMs });
    await Promise.all(this.workers.map((w) => w.next("sequenced", DEFAULT_STEP_TIMEOUT_MS + count * 100)));
  }

  /** Closes what is still open, waits (up to `timeoutMs`) for every acknowledgement, and collects the reports. */
  async finish(timeoutMs: number): Promise<WorkerReport[]> {
    for (const w of this.workers) w.send({ type: "finish", timeoutMs });
    const reports = await Promise.all(this.workers.map((w) => w.next("report", timeoutMs + 60_000)));
    await Promise.all(this.workers.map((w) => w.exited()));
    return reports.map((m) => m.report);
  }

  kill(): void {
    for (const w of this.workers) w.kill();
  }

  logs(): string {
    return this.workers
      .filter((w) => w.log.trim() !== "")
      .map((w) => `--- worker ${w.index}\n${w.log}`)
      .join("\n");
  }
}

/** All sessions in the store, every page. */
export async function allSessions(store: SessionStore): Promise<SessionRecord[]> {
  const sessions: SessionRecord[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await store.listSessions({ limit: 500, ...(cursor !== undefined ? { cursor } : {}) });
    sessions.push(...page.sessions);
    if (page.nextCursor === null) return sessions;
    cursor = page.nextCursor;
  }
}

export interface DeliveryCheck {
  sessionsOpened: number;
  eventsEmitted: number;
  /** Rows in the tracker's event log: events it acknowledged, each once. */
  eventsAcknowledged: number;
  /** Events acknowledged while the shells' own processes were running (the rest by a later `spool drain`). */
  acknowledgedInProcess: number;
  /** Starts with no session in the store, and ends of sessions the store does not show ended. */
  lost: number;
  /** Sessions recorded more than once, and event-log rows beyond one start and one end per session. */
  duplicated: number;
  /** Sessions in the store that none of these shells opened. */
  unexpected: number;
  /** Resends the tracker answered again (de-duplicated by event_id): the at-least-once retries at work. */
  resentAndDeduplicated: number;
  /**
   * Milliseconds from span start to the tracker's answer to the start, and
   * from span end to its answer to the end. `warm`: both, leaving out each
   * process's first COLD_SESSIONS sessions, which wait for their process's
   * first connection to the tracker.
   */
  latency: { start: Summary; end: Summary; all: Summary; warm: Summary };
  /** The exporter's own outcome counters, summed over the workers. */
  emissions: Record<string, number>;
  /** The first few discrepancies, for the failure message. */
  problems: string[];
}

/** Sessions per process counted as its cold start in `latency.warm`. */
export const COLD_SESSIONS = 10;

export async function checkDelivery(reports: WorkerReport[], store: SessionStore): Promise<DeliveryCheck> {
  const emitted = reports.flatMap((r) => r.sessions);
  const records = await allSessions(store);
  const bySpan = new Map<string, SessionRecord[]>();
  for (const record of records) {
    const spanId = record.metadata.span_id;
    const key = `${record.trace_id}/${typeof spanId === "string" ? spanId : ""}`;
    bySpan.set(key, [...(bySpan.get(key) ?? []), record]);
  }
  const problems: string[] = [];
  const note = (text: string) => {
    if (problems.length < 10) problems.push(text);
  };
  let lost = 0;
  let duplicateSessions = 0;
  let recorded = 0;
  let ended = 0;
  const matched = new Set<string>();
  for (const s of emitted) {
    const key = `${s.traceId}/${s.spanId}`;
    const found = bySpan.get(key) ?? [];
    matched.add(key);
    if (found.length === 0) {
      lost += 2;
      note(`session ${s.localSessionId} (trace ${s.traceId}) is not in the store`);
      continue;
    }
    recorded++;
    if (found.length > 1) {
      duplicateSessions += found.length - 1;
      note(`session ${s.localSessionId} is in the store ${found.length} times`);
    }
    if (found.some((r) => r.status === "ended")) ended++;
    else {
      lost++;
      note(`session ${s.localSessionId} is ${found[0]?.status} in the store, not ended`);
    }
  }
  const unexpected = [...bySpan.entries()].filter(([key]) => !matched.has(key)).reduce((n, [, r]) => n + r.length, 0);
  if (unexpected > 0) note(`${unexpected} sessions in the store were not opened by these shells`);
  const eventRows = await store.countEvents();
  const extraRows = Math.max(0, eventRows - recorded - ended - duplicateSessions);
  if (extraRows > 0) note(`the event log holds ${extraRows} rows beyond one start and one end per session`);

  const startLatency: number[] = [];
  const endLatency: number[] = [];
  const warm: number[] = [];
  const cold = new Set(
    reports.flatMap((r) => [...r.sessions].sort((a, b) => a.spanStart - b.spanStart).slice(0, COLD_SESSIONS)),
  );
  let inProcess = 0;
  let resent = 0;
  for (const s of emitted) {
    if (s.startAck !== null) {
      startLatency.push(s.startAck - s.spanStart);
      if (!cold.has(s)) warm.push(s.startAck - s.spanStart);
      inProcess++;
    }
    if (s.endAck !== null && s.spanEnd !== null) {
      endLatency.push(s.endAck - s.spanEnd);
      if (!cold.has(s)) warm.push(s.endAck - s.spanEnd);
      inProcess++;
    }
    resent += Math.max(0, s.startAnswers - 1) + Math.max(0, s.endAnswers - 1);
  }
  const emissions: Record<string, number> = {};
  for (const r of reports) {
    for (const [key, n] of Object.entries(r.emissions)) emissions[key] = (emissions[key] ?? 0) + n;
  }
  return {
    sessionsOpened: emitted.length,
    eventsEmitted: emitted.length * 2,
    eventsAcknowledged: eventRows,
    acknowledgedInProcess: inProcess,
    lost,
    duplicated: duplicateSessions + extraRows,
    unexpected,
    resentAndDeduplicated: resent,
    latency: {
      start: summarize(startLatency),
      end: summarize(endLatency),
      all: summarize([...startLatency, ...endLatency]),
      warm: summarize(warm),
    },
    emissions,
    problems,
  };
}
