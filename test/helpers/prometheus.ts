/**
 * A throwaway Prometheus for tests: Debian's `prometheus` binary on a free
 * loopback port, a generated configuration, a temp storage dir, a 1 s scrape
 * and rule evaluation interval.
 *
 *   const prom = await startPrometheus({ targets: [{ job: "tracker", address: "127.0.0.1:9464" }], ruleFiles: [...] });
 *   t.after(() => prom.stop());
 *   await prom.waitForTargetsUp();
 *   const result = await prom.query("sum(shell_session_active)");
 *
 * `promtool` (the same package) is exposed too, for `check rules`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { waitFor } from "./wait.ts";

export const PROMETHEUS_BIN = "/usr/bin/prometheus";
export const PROMTOOL_BIN = "/usr/bin/promtool";
const READY_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 15_000;
const START_ATTEMPTS = 3;

export interface ScrapeTarget {
  job: string;
  /** host:port of a /metrics endpoint. */
  address: string;
  /** Default /metrics. */
  path?: string;
}

export interface PrometheusOptions {
  targets: ScrapeTarget[];
  /** Rule files to load; Prometheus evaluates them every `evaluationInterval`. */
  ruleFiles?: string[];
  /** Default "1s". */
  scrapeInterval?: string;
  /** Default "1s". */
  evaluationInterval?: string;
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export type QueryResult =
  | { resultType: "vector"; result: Sample[] }
  | { resultType: "matrix"; result: { metric: Record<string, string>; values: [number, string][] }[] }
  | { resultType: "scalar" | "string"; result: [number, string] };

export interface TargetHealth {
  job: string;
  instance: string;
  health: "up" | "down" | "unknown";
  lastError: string;
}

export interface RuleHealth {
  name: string;
  type: "alerting" | "recording";
  query: string;
  health: "ok" | "err" | "unknown";
  lastError?: string;
  state?: "inactive" | "pending" | "firing";
  alerts?: { labels: Record<string, string>; state: string; value: string }[];
}

/** An error answer of the Prometheus HTTP API (bad PromQL, unknown endpoint…), with its errorType. */
export class PrometheusApiError extends Error {
  override readonly name = "PrometheusApiError";
  readonly errorType: string;
  constructor(errorType: string, message: string) {
    super(`${errorType}: ${message}`);
    this.errorType = errorType;
  }
}

export function assertPrometheusInstalled(): void {
  for (const bin of [PROMETHEUS_BIN, PROMTOOL_BIN]) {
    if (!existsSync(bin)) {
      throw new Error(`${bin} is missing: install Debian's prometheus package (apt-get install prometheus; CI does)`);
    }
  }
}

function configYaml(options: PrometheusOptions): string {
  // JSON is YAML: no YAML writer needed for a config we generate.
  return JSON.stringify(
    {
      global: {
        scrape_interval: options.scrapeInterval ?? "1s",
        scrape_timeout: "1s",
        evaluation_interval: options.evaluationInterval ?? "1s",
      },
      rule_files: options.ruleFiles ?? [],
      scrape_configs: options.targets.map((t) => ({
        job_name: t.job,
        metrics_path: t.path ?? "/metrics",
        static_configs: [{ targets: [t.address] }],
      })),
    },
    null,
    2,
  );
}

export class PrometheusServer {
  readonly dir: string;
  #options: PrometheusOptions;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #port = 0;
  #log = "";

  constructor(options: PrometheusOptions) {
    this.#options = options;
    this.dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-prometheus-"));
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** What Prometheus logged so far (stderr). */
  get log(): string {
    return this.#log;
  }

  async start(): Promise<void> {
    assertPrometheusInstalled();
    const configFile = join(this.dir, "prometheus.yml");
    writeFileSync(configFile, configYaml(this.#options));
    for (let attempt = 1; ; attempt++) {
      this.#port = await freePort();
      try {
        await this.#spawn(configFile);
        return;
      } catch (error) {
        // Another process may take the free port between our probe and Prometheus' bind.
        if (attempt >= START_ATTEMPTS || !/address already in use/.test(this.#log)) throw error;
      }
    }
  }

  async #spawn(configFile: string): Promise<void> {
    this.#log = "";
    const child = spawn(
      PROMETHEUS_BIN,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(this.dir, "data")}`,
        `--web.listen-address=127.0.0.1:${this.#port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "ignore", "pipe"], cwd: this.dir },
    );
    this.#child = child;
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      this.#log += chunk;
    });
    let exited = false;
    this.#exited = new Promise((resolve) => {
      child.once("exit", () => {
        exited = true;
        resolve();
      });
    });
    try {
      await waitFor(
        () => `prometheus to be ready on ${this.url}; its log:\n${this.#log}`,
        async () => {
          if (exited) throw new Error(`prometheus exited; its log:\n${this.#log}`);
          const response = await fetch(`${this.url}/-/ready`);
          await response.body?.cancel();
          return response.ok ? true : undefined;
        },
        READY_DEADLINE_MS,
        250,
      );
    } catch (error) {
      child.kill("SIGKILL");
      await this.#exited;
      throw error;
    }
  }

  async #api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
    const url = new URL(`/api/v1/${path}`, this.url);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const response = await fetch(url);
    const body = (await response.json()) as { status: string; data: T; errorType?: string; error?: string };
    if (body.status !== "success") throw new PrometheusApiError(body.errorType ?? "error", body.error ?? "");
    return body.data;
  }

  /** An instant query; throws PrometheusApiError for a query Prometheus refuses. */
  query(expr: string): Promise<QueryResult> {
    return this.#api<QueryResult>("query", { query: expr });
  }

  /** The `__name__` of every series Prometheus has. */
  async metricNames(): Promise<string[]> {
    return this.#api<string[]>("label/__name__/values");
  }

  /** HELP, TYPE and UNIT per metric family, as scraped. */
  metadata(): Promise<Record<string, { type: string; help: string; unit: string }[]>> {
    return this.#api("metadata");
  }

  async targets(): Promise<TargetHealth[]> {
    const data = await this.#api<{ activeTargets: (TargetHealth & { labels: Record<string, string> })[] }>("targets");
    return data.activeTargets.map((t) => ({
      job: t.labels.job ?? "",
      instance: t.labels.instance ?? "",
      health: t.health,
      lastError: t.lastError,
    }));
  }

  async rules(): Promise<RuleHealth[]> {
    const data = await this.#api<{ groups: { rules: RuleHealth[] }[] }>("rules");
    return data.groups.flatMap((g) => g.rules);
  }

  /** Waits until every configured target has been scraped successfully. */
  async waitForTargetsUp(deadlineMs = 30_000): Promise<TargetHealth[]> {
    let last: TargetHealth[] = [];
    return waitFor(
      () => `every target to be up (last: ${JSON.stringify(last)})`,
      async () => {
        last = await this.targets();
        return last.length === this.#options.targets.length && last.every((t) => t.health === "up") ? last : undefined;
      },
      deadlineMs,
      250,
    );
  }

  /** Polls an instant query until it returns at least one sample matching `accept`. */
  async waitForSeries(
    expr: string,
    accept: (s: Sample) => boolean = () => true,
    deadlineMs = 30_000,
  ): Promise<Sample[]> {
    let last: QueryResult | undefined;
    return waitFor(
      () => `a matching series for ${expr} (last result: ${JSON.stringify(last)})`,
      async () => {
        last = await this.query(expr);
        if (last.resultType !== "vector") return undefined;
        const matching = last.result.filter(accept);
        return matching.length > 0 ? matching : undefined;
      },
      deadlineMs,
      250,
    );
  }

  /** SIGTERM, wait for the exit (SIGKILL after a deadline), remove the storage dir. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_DEADLINE_MS);
      await this.#exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const server = new PrometheusServer(options);
  try {
    await server.start();
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

export interface PromtoolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `promtool ARGS` (e.g. `check rules FILE`) to completion. */
export function promtool(args: string[], timeoutMs = 30_000): Promise<PromtoolResult> {
  assertPrometheusInstalled();
  return new Promise((resolve) => {
    execFile(PROMTOOL_BIN, args, { timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
