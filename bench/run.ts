/**
 * `npm run bench`: where otel-shell-sessions stands, measured beside its
 * peers in one run on this machine, and reported as ratios.
 *
 * - time to first prompt: bare `node` REPL, `--import otel-shell-sessions/register`,
 *   `--import @opentelemetry/auto-instrumentations-node/register`, with the
 *   tracker up, down, and (ours) answering only after 5 s;
 * - emission latency (span start/end → tracker acknowledgement) over HTTP and
 *   stdio, beside a no-op MCP tool on the same SDK and transport;
 * - tracker ingest with 1, 8 and 32 concurrent clients, beside the no-op
 *   tool's calls per second and a raw `node:sqlite` insert loop of the same rows;
 *   and at 32 clients with many events a call (`track_session_events`);
 * - memory: a bare REPL beside an instrumented one; an app that runs NodeSDK
 *   already, with and without the register entry; the tracker with 1,000
 *   active sessions;
 * - the load average at the start and end of each figure.
 *
 * Variants are interleaved (ABCABC…) so that whatever else the machine does
 * falls on all of them alike. Nothing here asserts a timing: the figures are
 * printed as a table and written to bench/results.json. BENCH_QUICK=1 runs
 * every figure with small counts (a smoke test of the harness).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { BATCH_EVENTS } from "../src/exporter/calls.ts";
import { openStore } from "../src/store/index.ts";
import { startDelayProxy } from "../test/helpers/delay-proxy.ts";
import { startPayload, tokenFor } from "../test/helpers/mcp-client.ts";
import { freePort } from "../test/helpers/ports.ts";
import { startTracker, type TrackerProcess } from "../test/helpers/tracker.ts";
import {
  formatNumber,
  formatRatio,
  median,
  ratio,
  round,
  type Summary,
  summarize,
} from "../test/stress/support/stats.ts";
import { concurrentEmission, type EmissionFigures, emissionLatency } from "./lib/emission.ts";
import { peerSteps, rawInserts, sustainedRate, trackerBatchSteps, trackerSteps } from "./lib/ingest.ts";
import { describeMachine, rssMiB } from "./lib/machine.ts";
import { httpClient, noopStdioClient, startNoopHttp } from "./lib/peer.ts";
import {
  type FirstAnswer,
  firstAnswer,
  type Preload,
  STALL_WINDOW_MS,
  shellEnv,
  shellMemory,
  timeToExit,
  timeToPrompt,
} from "./lib/ttfp.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const RESULTS = fileURLToPath(new URL("./results.json", import.meta.url));
const QUICK = process.env.BENCH_QUICK === "1";

const SIZES = QUICK
  ? {
      promptRounds: 2,
      answerRounds: 2,
      exitRounds: 2,
      memoryRounds: 1,
      blocks: 2,
      sessionsPerBlock: 10,
      callsPerBlock: 20,
      warmup: 5,
      ingestRounds: 1,
      rawRounds: 1,
      windowMs: 1_000,
      rawSessions: 500,
      activeSessions: 100,
      concurrentShells: 20,
      concurrentRounds: 1,
    }
  : {
      promptRounds: 40,
      answerRounds: 12,
      exitRounds: 10,
      memoryRounds: 5,
      blocks: 5,
      sessionsPerBlock: 60,
      callsPerBlock: 200,
      warmup: 20,
      ingestRounds: 9,
      rawRounds: 3,
      windowMs: 1_000,
      rawSessions: 5_000,
      activeSessions: 1_000,
      concurrentShells: 100,
      concurrentRounds: 3,
    };
const CONCURRENCY = [1, 8, 32] as const;
/**
 * Events in each `track_session_events` call of the batch ingest figures: 20
 * is about what the exporter puts in one when 100 shells of a process close
 * at once (spread over its 8 sends); 50 is the most it puts in one
 * (BATCH_EVENTS), what a backlog (a spool after an outage) is sent in.
 */
const INGEST_BATCH_EVENTS = [20, BATCH_EVENTS] as const;
const SLOW_TRACKER_DELAY_MS = 5_000;

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

function figures(s: Summary) {
  return { n: s.n, p50: round(s.p50), p99: round(s.p99), min: round(s.min), max: round(s.max) };
}

/** Polls until `done()` holds; throws after `timeoutMs`. */
async function until(done: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---- time to first prompt ----

interface PromptVariant {
  name: string;
  preload: Preload;
  tracker: "up" | "down" | "slow";
}

const PROMPT_VARIANTS: PromptVariant[] = [
  { name: "bare, tracker up", preload: "bare", tracker: "up" },
  { name: "register, tracker up", preload: "register", tracker: "up" },
  { name: "auto-instrumentations, tracker up", preload: "auto-instrumentations", tracker: "up" },
  { name: "bare, tracker down", preload: "bare", tracker: "down" },
  { name: "register, tracker down", preload: "register", tracker: "down" },
  { name: "auto-instrumentations, tracker down", preload: "auto-instrumentations", tracker: "down" },
  { name: "register, tracker answering after 5 s", preload: "register", tracker: "slow" },
];

async function promptFigures(env: Record<PromptVariant["tracker"], NodeJS.ProcessEnv>) {
  const samples = new Map<string, number[]>(PROMPT_VARIANTS.map((v) => [v.name, []]));
  for (let round = 0; round < SIZES.promptRounds; round++) {
    for (const variant of PROMPT_VARIANTS) {
      samples.get(variant.name)?.push(await timeToPrompt(variant.preload, env[variant.tracker], REPO));
    }
    log(`time to first prompt: round ${round + 1} of ${SIZES.promptRounds}`);
  }
  const summary = (name: string) => summarize(samples.get(name) ?? []);
  // Each round's ratio of two variants measured back to back, then the median of those: what the machine
  // was doing at the time falls on both, which a ratio of two medians of whole runs does not cancel.
  const paired = (a: string, b: string) => {
    const of = samples.get(a) ?? [];
    const to = samples.get(b) ?? [];
    const ratios = of.map((x, i) => ratio(x, to[i] ?? Number.NaN)).filter((r): r is number => r !== null);
    return round(ratios.length > 0 ? median(ratios) : Number.NaN);
  };
  return {
    rounds: SIZES.promptRounds,
    unit: "ms",
    variants: Object.fromEntries(PROMPT_VARIANTS.map((v) => [v.name, figures(summary(v.name))])),
    medianPairedRatios: {
      "register / bare, tracker up": paired("register, tracker up", "bare, tracker up"),
      "register / bare, tracker down": paired("register, tracker down", "bare, tracker down"),
      "register answering after 5 s / bare": paired("register, tracker answering after 5 s", "bare, tracker up"),
      "auto-instrumentations / bare, tracker up": paired("auto-instrumentations, tracker up", "bare, tracker up"),
      "auto-instrumentations / bare, tracker down": paired("auto-instrumentations, tracker down", "bare, tracker down"),
      "register / auto-instrumentations, tracker up": paired(
        "register, tracker up",
        "auto-instrumentations, tracker up",
      ),
    },
  };
}

// ---- time to the first answer, and the event loop after the prompt ----

/** Bare and register shells, tracker up, back to back each round: `6*7` typed at the prompt, then 5 s watched. */
async function answerFigures(env: NodeJS.ProcessEnv) {
  const rounds: Record<"bare" | "register", FirstAnswer>[] = [];
  for (let round = 0; round < SIZES.answerRounds; round++) {
    rounds.push({ bare: await firstAnswer("bare", env, REPO), register: await firstAnswer("register", env, REPO) });
    log(`time to first answer: round ${round + 1} of ${SIZES.answerRounds}`);
  }
  const side = (preload: "bare" | "register") => ({
    answer: figures(summarize(rounds.map((r) => r[preload].answerMs))),
    longestStall: figures(summarize(rounds.map((r) => r[preload].stallMs))),
  });
  const pairedRatios = rounds
    .map((r) => ratio(r.register.answerMs, r.bare.answerMs))
    .filter((r): r is number => r !== null);
  return {
    rounds: SIZES.answerRounds,
    unit: "ms",
    stallWindowMs: STALL_WINDOW_MS,
    bare: side("bare"),
    register: side("register"),
    answerMedianPairedRatio: round(pairedRatios.length > 0 ? median(pairedRatios) : Number.NaN),
  };
}

// ---- time to exit ----

const EXIT_VARIANTS = [
  { name: "bare, tracker up", preload: "bare", tracker: "up" },
  { name: "register, tracker up", preload: "register", tracker: "up" },
  { name: "bare, tracker down", preload: "bare", tracker: "down" },
  { name: "register, tracker down", preload: "register", tracker: "down" },
  // Bare node does not talk to a tracker: its figures above are the peer for this one too.
  { name: "register, tracker answering after 5 s", preload: "register", tracker: "slow" },
  { name: "bare, at the prompt", preload: "bare", tracker: "up", atPrompt: true },
  { name: "register, at the prompt", preload: "register", tracker: "up", atPrompt: true },
] as const satisfies {
  name: string;
  preload: Preload;
  tracker: "up" | "down" | "slow";
  atPrompt?: boolean;
}[];

/** `.exit` to the terminal back, with no Collector listening (the SDK's default OTLP exporters on). */
async function exitFigures(env: Record<"up" | "down" | "slow", NodeJS.ProcessEnv>) {
  const samples = new Map<string, number[]>(EXIT_VARIANTS.map((v) => [v.name, []]));
  for (let round = 0; round < SIZES.exitRounds; round++) {
    for (const variant of EXIT_VARIANTS) {
      const atPrompt = "atPrompt" in variant && variant.atPrompt;
      samples.get(variant.name)?.push(await timeToExit(variant.preload, env[variant.tracker], REPO, atPrompt));
    }
    log(`time to exit: round ${round + 1} of ${SIZES.exitRounds}`);
  }
  const summary = (name: string) => summarize(samples.get(name) ?? []);
  const diff = (a: string, b: string, key: "p50" | "p99") => round((summary(a)[key] ?? 0) - (summary(b)[key] ?? 0));
  return {
    rounds: SIZES.exitRounds,
    unit: "ms",
    collector: "absent",
    variants: Object.fromEntries(EXIT_VARIANTS.map((v) => [v.name, figures(summary(v.name))])),
    differences: {
      "register - bare, tracker up, p50": diff("register, tracker up", "bare, tracker up", "p50"),
      "register - bare, tracker up, p99": diff("register, tracker up", "bare, tracker up", "p99"),
      "register - bare, tracker down, p50": diff("register, tracker down", "bare, tracker down", "p50"),
      "register - bare, tracker down, p99": diff("register, tracker down", "bare, tracker down", "p99"),
      "register - bare, tracker slow, p50": diff("register, tracker answering after 5 s", "bare, tracker up", "p50"),
      "register - bare, tracker slow, p99": diff("register, tracker answering after 5 s", "bare, tracker up", "p99"),
      "register - bare, at the prompt, p50": diff("register, at the prompt", "bare, at the prompt", "p50"),
      "register - bare, at the prompt, p99": diff("register, at the prompt", "bare, at the prompt", "p99"),
    },
  };
}

// ---- memory of a shell ----

async function shellMemoryFigures(tracker: TrackerProcess, env: NodeJS.ProcessEnv) {
  const store = await openStore(tracker.store);
  const bare: { atPrompt: number; settled: number }[] = [];
  const instrumented: { atPrompt: number; settled: number }[] = [];
  const appAlone: { atPrompt: number; settled: number }[] = [];
  const appWithRegister: { atPrompt: number; settled: number }[] = [];
  // Settled for an instrumented shell: its session is in the tracker, so the SDK and exporter are loaded and have worked.
  const delivered = (preload: "register" | "app-sdk+register") => async () => {
    const before = await store.countEvents();
    return shellMemory(preload, env, REPO, () =>
      until(async () => (await store.countEvents()) > before, 30_000, "the shell's session start reaching the tracker"),
    );
  };
  try {
    for (let round = 0; round < SIZES.memoryRounds; round++) {
      const ours = await delivered("register")();
      instrumented.push(ours);
      bare.push(await shellMemory("bare", env, REPO, { waitMs: ours.settleMs }));
      // An application that runs NodeSDK already, with and without the register entry joining it.
      const joined = await delivered("app-sdk+register")();
      appWithRegister.push(joined);
      appAlone.push(await shellMemory("app-sdk", env, REPO, { waitMs: joined.settleMs }));
    }
  } finally {
    await store.close();
  }
  const side = (rows: { atPrompt: number; settled: number }[]) => ({
    atPromptMiB: round(median(rows.map((r) => r.atPrompt)), 1),
    settledMiB: round(median(rows.map((r) => r.settled)), 1),
  });
  const b = side(bare);
  const i = side(instrumented);
  const alone = side(appAlone);
  const joined = side(appWithRegister);
  return {
    rounds: SIZES.memoryRounds,
    bareRepl: b,
    instrumentedRepl: i,
    appWithNodeSdk: {
      aloneMiB: alone.settledMiB,
      withRegisterMiB: joined.settledMiB,
      // Each round's own difference: the two shells of a round ran back to back.
      marginalMiB: round(median(appWithRegister.map((r, n) => r.settled - (appAlone[n]?.settled ?? Number.NaN))), 1),
    },
    ratioSettled: round(ratio(i.settledMiB ?? Number.NaN, b.settledMiB ?? Number.NaN) ?? Number.NaN),
    ratioAtPrompt: round(ratio(i.atPromptMiB ?? Number.NaN, b.atPromptMiB ?? Number.NaN) ?? Number.NaN),
  };
}

// ---- emission latency ----

function emissionJson(f: EmissionFigures) {
  return {
    unit: "ms",
    start: figures(f.start),
    end: figures(f.end),
    all: figures(f.all),
    noopPeer: figures(f.peer),
    ratioP50: round(ratio(f.all.p50, f.peer.p50) ?? Number.NaN),
    ratioP99: round(ratio(f.all.p99, f.peer.p99) ?? Number.NaN),
    idleGap: {
      gapMs: round(f.idleGapMs, 0),
      startAfterGap: figures(f.afterIdleGap),
      warmStart: figures(f.warmStart),
      ratioP50: round(ratio(f.afterIdleGap.p50, f.warmStart.p50) ?? Number.NaN),
    },
  };
}

// ---- load ----

/** The 1-minute load average when each figure began and ended: what else the machine was doing meanwhile. */
const loads: Record<string, { start: number; end: number }> = {};
const loadNow = () => Math.round((loadavg()[0] ?? 0) * 100) / 100;

async function loaded<T>(figure: string, measure: () => Promise<T>): Promise<T> {
  const start = loadNow();
  const result = await measure();
  loads[figure] = { start, end: loadNow() };
  return result;
}

// ---- ingest ----

/**
 * Batches go to a tracker of their own, after the one-event rounds: they add
 * rows several times faster, and a store grown by them would slow the
 * one-event rounds that followed. Each beside the no-op peer in the same round.
 */
async function batchRates(theirs: Client[], add: (key: string, value: number) => void): Promise<void> {
  const tracker = await startTracker({ lease: 3600 });
  const token = await tokenFor(tracker.secret as string, "bench");
  const ours: Client[] = [];
  try {
    for (const _ of theirs) ours.push(await httpClient(tracker.url, token));
    for (let round = 0; round < SIZES.ingestRounds; round++) {
      for (const size of INGEST_BATCH_EVENTS) {
        const b = await sustainedRate(ours, trackerBatchSteps(size), SIZES.windowMs, 300);
        const p = await sustainedRate(theirs, peerSteps(), SIZES.windowMs, 300);
        add(`batch/${size}`, b);
        add(`peer/batch/${size}`, p);
        add(`ratio/batch/${size}`, ratio(b, p) ?? Number.NaN);
        log(`ingest: round ${round + 1}, ${theirs.length} clients, ${size} events a call`);
      }
    }
  } finally {
    await Promise.allSettled(ours.map((c) => c.close()));
    await tracker.stop();
  }
}

async function ingestFigures(root: string) {
  const tracker = await startTracker({ lease: 3600 });
  const peer = await startNoopHttp();
  const max = Math.max(...CONCURRENCY);
  const token = await tokenFor(tracker.secret as string, "bench");
  const ours: Client[] = [];
  const theirs: Client[] = [];
  try {
    for (let i = 0; i < max; i++) {
      ours.push(await httpClient(tracker.url, token));
      theirs.push(await httpClient(peer.url));
    }
    const samples = new Map<string, number[]>();
    const add = (key: string, value: number) => samples.set(key, [...(samples.get(key) ?? []), value]);
    for (let round = 0; round < SIZES.ingestRounds; round++) {
      for (const n of CONCURRENCY) {
        const o = await sustainedRate(ours.slice(0, n), trackerSteps(), SIZES.windowMs, 300);
        const p = await sustainedRate(theirs.slice(0, n), peerSteps(), SIZES.windowMs, 300);
        add(`ours/${n}`, o);
        add(`peer/${n}`, p);
        // Each round's own ratio: load from elsewhere drifts between rounds, far less within one.
        add(`ratio/${n}`, ratio(o, p) ?? Number.NaN);
        log(`ingest: round ${round + 1}, ${n} clients`);
      }
    }
    await batchRates(theirs, add);
    const raw = {
      autocommit: [] as number[],
      transaction: [] as number[],
      rowsAutocommit: [] as number[],
      rowsTransaction: [] as number[],
    };
    for (let round = 0; round < SIZES.rawRounds; round++) {
      const a = await rawInserts(root, SIZES.rawSessions, "autocommit");
      const t = await rawInserts(root, SIZES.rawSessions, "transaction");
      raw.autocommit.push(a.eventsPerSecond);
      raw.rowsAutocommit.push(a.rowsPerSecond);
      raw.transaction.push(t.eventsPerSecond);
      raw.rowsTransaction.push(t.rowsPerSecond);
    }
    const rawAuto = median(raw.autocommit);
    const rawTxn = median(raw.transaction);
    const byClients = Object.fromEntries(
      CONCURRENCY.map((n) => {
        const o = median(samples.get(`ours/${n}`) ?? []);
        const p = median(samples.get(`peer/${n}`) ?? []);
        return [
          String(n),
          {
            trackerEventsPerSecond: round(o, 0),
            noopCallsPerSecond: round(p, 0),
            ratioToNoop: round(median(samples.get(`ratio/${n}`) ?? [])),
            ratioToRawAutocommit: round(ratio(o, rawAuto) ?? Number.NaN),
            ratioToRawTransaction: round(ratio(o, rawTxn) ?? Number.NaN),
            samples: {
              tracker: (samples.get(`ours/${n}`) ?? []).map((v) => round(v, 0)),
              noop: (samples.get(`peer/${n}`) ?? []).map((v) => round(v, 0)),
            },
          },
        ];
      }),
    );
    return {
      rounds: SIZES.ingestRounds,
      windowSeconds: SIZES.windowMs / 1000,
      clients: byClients,
      batches: INGEST_BATCH_EVENTS.map((size) => ({
        clients: max,
        eventsPerCall: size,
        trackerEventsPerSecond: round(median(samples.get(`batch/${size}`) ?? []), 0),
        noopCallsPerSecond: round(median(samples.get(`peer/batch/${size}`) ?? []), 0),
        ratioToNoop: round(median(samples.get(`ratio/batch/${size}`) ?? [])),
        samples: (samples.get(`batch/${size}`) ?? []).map((v) => round(v, 0)),
      })),
      rawSqlite: {
        rounds: SIZES.rawRounds,
        sessionsPerLoop: SIZES.rawSessions,
        rowsPerSession: 3,
        autocommit: { eventsPerSecond: round(rawAuto, 0), rowsPerSecond: round(median(raw.rowsAutocommit), 0) },
        oneTransaction: { eventsPerSecond: round(rawTxn, 0), rowsPerSecond: round(median(raw.rowsTransaction), 0) },
      },
    };
  } finally {
    await Promise.allSettled([...ours, ...theirs].map((c) => c.close()));
    await peer.stop();
    await tracker.stop();
  }
}

// ---- tracker memory ----

async function trackerMemoryFigures() {
  const tracker = await startTracker({ lease: 3600 });
  const token = await tokenFor(tracker.secret as string, "bench");
  const clients: Client[] = [];
  try {
    for (let i = 0; i < 8; i++) clients.push(await httpClient(tracker.url, token));
    await clients[0]?.callTool({ name: "health_check", arguments: {} });
    const idle = rssMiB(tracker.pid);
    let next = 0;
    await Promise.all(
      clients.map(async (client) => {
        while (next < SIZES.activeSessions) {
          next++;
          await client.callTool({ name: "track_session_start", arguments: startPayload({ component_name: "bench" }) });
        }
      }),
    );
    const store = await openStore(tracker.store);
    const active = await store.countActive();
    await store.close();
    return { activeSessions: active, idleMiB: round(idle, 1), withActiveSessionsMiB: round(rssMiB(tracker.pid), 1) };
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await tracker.stop();
  }
}

// ---- the table ----

function ms(s: { p50: number | null; p99: number | null }): string {
  return `${formatNumber(s.p50)} / ${formatNumber(s.p99)} ms`;
}

type Results = Awaited<ReturnType<typeof main>>;

function table(r: Results): string {
  const prompt = r.timeToFirstPrompt.variants as Record<string, { p50: number | null; p99: number | null }>;
  const pr = r.timeToFirstPrompt.medianPairedRatios;
  const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const lines = [row(["Figure", "Measured", "Compared with", "Ratio"]), row(["---", "---", "---", "---"])];
  const p = (name: string) => ms(prompt[name] ?? { p50: null, p99: null });
  const bareUp = `bare node ${p("bare, tracker up")}`;
  const bareDown = `bare node ${p("bare, tracker down")}`;
  lines.push(
    row([
      "Time to first prompt (p50 / p99), register, tracker up",
      p("register, tracker up"),
      bareUp,
      formatRatio(pr["register / bare, tracker up"]),
    ]),
  );
  lines.push(
    row([
      "… register, tracker down",
      p("register, tracker down"),
      bareDown,
      formatRatio(pr["register / bare, tracker down"]),
    ]),
  );
  lines.push(
    row([
      "… register, tracker answering after 5 s",
      p("register, tracker answering after 5 s"),
      bareUp,
      formatRatio(pr["register answering after 5 s / bare"]),
    ]),
  );
  lines.push(
    row([
      "… auto-instrumentations-node/register, tracker up",
      p("auto-instrumentations, tracker up"),
      bareUp,
      formatRatio(pr["auto-instrumentations / bare, tracker up"]),
    ]),
  );
  lines.push(
    row([
      "… auto-instrumentations-node/register, tracker down",
      p("auto-instrumentations, tracker down"),
      bareDown,
      formatRatio(pr["auto-instrumentations / bare, tracker down"]),
    ]),
  );
  lines.push(
    row([
      "… register vs auto-instrumentations-node/register, tracker up",
      p("register, tracker up"),
      p("auto-instrumentations, tracker up"),
      formatRatio(pr["register / auto-instrumentations, tracker up"]),
    ]),
  );
  const answer = r.timeToFirstAnswer;
  lines.push(
    row([
      "Time to first answer (`6*7` → `42`, p50 / p99), register, tracker up",
      ms(answer.register.answer),
      `bare node ${ms(answer.bare.answer)}`,
      formatRatio(answer.answerMedianPairedRatio),
    ]),
  );
  lines.push(
    row([
      `Longest event-loop stall in the ${answer.stallWindowMs / 1000} s after the prompt (p50 / max)`,
      `${formatNumber(answer.register.longestStall.p50)} / ${formatNumber(answer.register.longestStall.max)} ms`,
      `bare node ${formatNumber(answer.bare.longestStall.p50)} / ${formatNumber(answer.bare.longestStall.max)} ms`,
      `+${formatNumber(round((answer.register.longestStall.p50 ?? 0) - (answer.bare.longestStall.p50 ?? 0)))} ms`,
    ]),
  );
  const exit = r.timeToExit.variants as Record<string, { p50: number | null; p99: number | null }>;
  const e = (name: string) => ms(exit[name] ?? { p50: null, p99: null });
  const ed = r.timeToExit.differences;
  const exitRows = [
    { what: "tracker up", ours: "register, tracker up", bare: "bare, tracker up", key: "tracker up" },
    { what: "tracker down", ours: "register, tracker down", bare: "bare, tracker down", key: "tracker down" },
    {
      what: "tracker answering after 5 s",
      ours: "register, tracker answering after 5 s",
      bare: "bare, tracker up",
      key: "tracker slow",
    },
  ] as const;
  type ExitRow = { ours: string; bare: string; key: "tracker up" | "tracker down" | "tracker slow" | "at the prompt" };
  const exitRow = (label: string, { ours, bare, key }: ExitRow) =>
    row([
      label,
      e(ours),
      `bare node ${e(bare)}`,
      `+${formatNumber(ed[`register - bare, ${key}, p50`])} / +${formatNumber(ed[`register - bare, ${key}, p99`])} ms`,
    ]);
  for (const variant of exitRows) {
    lines.push(exitRow(`Time to exit after \`.exit\` (p50 / p99), no Collector, register, ${variant.what}`, variant));
  }
  lines.push(
    exitRow("… `.exit` typed the moment the prompt appears (telemetry still loading), tracker up", {
      ours: "register, at the prompt",
      bare: "bare, at the prompt",
      key: "at the prompt",
    }),
  );
  for (const [transport, f] of Object.entries(r.emissionLatency)) {
    lines.push(
      row([
        `Emission latency over ${transport === "http" ? "Streamable HTTP" : "stdio"} (p50 / p99)`,
        `${ms(f.all)} (start ${ms(f.start)})`,
        `no-op tool ${ms(f.noopPeer)}`,
        `${formatRatio(f.ratioP50)} / ${formatRatio(f.ratioP99)}`,
      ]),
    );
    lines.push(
      row([
        `… start after an idle gap of ${formatNumber(f.idleGap.gapMs)} ms (p50 / p99)`,
        ms(f.idleGap.startAfterGap),
        `warm start ${ms(f.idleGap.warmStart)}`,
        formatRatio(f.idleGap.ratioP50),
      ]),
    );
  }
  const c = r.concurrentEmission;
  lines.push(
    row([
      `Emission latency, ${c.shells} REPLs of one process opened, then closed, together (p50 / p99)`,
      ms(c.all),
      `${c.shells} no-op calls at once ${ms(c.noopPeer)}`,
      `${formatRatio(c.ratioP50)} / ${formatRatio(c.ratioP99)}`,
    ]),
  );

  for (const [n, f] of Object.entries(r.ingest.clients)) {
    lines.push(
      row([
        `Tracker ingest over HTTP, ${n} client${n === "1" ? "" : "s"}`,
        formatNumber(f.trackerEventsPerSecond, "events/s"),
        `no-op tool ${formatNumber(f.noopCallsPerSecond, "calls/s")}`,
        formatRatio(f.ratioToNoop),
      ]),
    );
  }
  const top = r.ingest.clients[String(Math.max(...CONCURRENCY))];
  // Absent from results written before the batch tool.
  for (const batch of r.ingest.batches ?? []) {
    lines.push(
      row([
        `Tracker ingest over HTTP, ${batch.clients} clients, ${batch.eventsPerCall} events a call (track_session_events)`,
        formatNumber(batch.trackerEventsPerSecond, "events/s"),
        `no-op tool ${formatNumber(batch.noopCallsPerSecond, "calls/s")}`,
        formatRatio(batch.ratioToNoop),
      ]),
    );
  }
  const raw = r.ingest.rawSqlite;
  lines.push(
    row([
      `Tracker ingest (${Math.max(...CONCURRENCY)} clients) vs raw node:sqlite inserts, autocommit`,
      formatNumber(top?.trackerEventsPerSecond, "events/s"),
      `${formatNumber(raw.autocommit.eventsPerSecond, "events/s")} (${formatNumber(raw.autocommit.rowsPerSecond, "rows/s")})`,
      formatRatio(top?.ratioToRawAutocommit),
    ]),
  );
  lines.push(
    row([
      "… vs raw node:sqlite inserts, one transaction",
      formatNumber(top?.trackerEventsPerSecond, "events/s"),
      `${formatNumber(raw.oneTransaction.eventsPerSecond, "events/s")} (${formatNumber(raw.oneTransaction.rowsPerSecond, "rows/s")})`,
      formatRatio(top?.ratioToRawTransaction),
    ]),
  );
  const m = r.memory;
  lines.push(
    row([
      "RSS of a REPL at its first prompt",
      formatNumber(m.shells.instrumentedRepl.atPromptMiB, "MiB"),
      `bare node ${formatNumber(m.shells.bareRepl.atPromptMiB, "MiB")}`,
      formatRatio(m.shells.ratioAtPrompt),
    ]),
  );
  lines.push(
    row([
      "RSS of a REPL, session delivered",
      formatNumber(m.shells.instrumentedRepl.settledMiB, "MiB"),
      `bare node ${formatNumber(m.shells.bareRepl.settledMiB, "MiB")}`,
      formatRatio(m.shells.ratioSettled),
    ]),
  );
  const app = m.shells.appWithNodeSdk;
  if (app !== undefined) {
    lines.push(
      row([
        "RSS of a REPL in an app that already runs NodeSDK, session delivered",
        formatNumber(app.withRegisterMiB, "MiB"),
        `the app without register ${formatNumber(app.aloneMiB, "MiB")}`,
        `+${formatNumber(app.marginalMiB, "MiB")}`,
      ]),
    );
  }
  lines.push(
    row([
      `Tracker RSS, ${m.tracker.activeSessions} active sessions`,
      formatNumber(m.tracker.withActiveSessionsMiB, "MiB"),
      `idle ${formatNumber(m.tracker.idleMiB, "MiB")}`,
      formatRatio(ratio(m.tracker.withActiveSessionsMiB ?? Number.NaN, m.tracker.idleMiB ?? Number.NaN)),
    ]),
  );
  return lines.join("\n");
}

// ---- the run ----

async function main() {
  const began = performance.now();
  const machine = describeMachine();
  log(
    `on ${machine.nproc} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, load ${machine.loadAverageAtStart}`,
  );
  const root = mkdtempSync(join(tmpdir(), "otel-shell-sessions-bench-"));
  const tracker = await startTracker({ lease: 3600 });
  const slow = await startDelayProxy(tracker.url, SLOW_TRACKER_DELAY_MS);
  const downPort = await freePort();
  const httpPeer = await startNoopHttp();
  try {
    const env = {
      up: shellEnv(tracker.url, tracker.secret, join(root, "state-up")),
      down: shellEnv(`http://127.0.0.1:${downPort}/mcp`, tracker.secret, join(root, "state-down")),
      slow: shellEnv(slow.url, tracker.secret, join(root, "state-slow")),
    };
    const timeToFirstPrompt = await loaded("timeToFirstPrompt", () => promptFigures(env));
    const timeToFirstAnswer = await loaded("timeToFirstAnswer", () => answerFigures(env.up));
    const timeToExit = await loaded("timeToExit", () =>
      exitFigures({
        up: shellEnv(tracker.url, tracker.secret, join(root, "exit-up"), { collector: "absent" }),
        down: shellEnv(`http://127.0.0.1:${downPort}/mcp`, tracker.secret, join(root, "exit-down"), {
          collector: "absent",
        }),
        slow: shellEnv(slow.url, tracker.secret, join(root, "exit-slow"), { collector: "absent" }),
      }),
    );
    const shells = await loaded("shellMemory", () => shellMemoryFigures(tracker, env.up));
    log("memory of shells measured");

    const peerClient = await httpClient(httpPeer.url);
    const http = await loaded("emissionLatencyHttp", () =>
      emissionLatency({ transport: "http", tracker, peer: peerClient }, root, SIZES).finally(() => peerClient.close()),
    );
    log("emission latency over HTTP measured");
    const concurrentPeer = await httpClient(httpPeer.url);
    const concurrent = await loaded("concurrentEmission", () =>
      concurrentEmission({ transport: "http", tracker, peer: concurrentPeer }, root, {
        shells: SIZES.concurrentShells,
        rounds: SIZES.concurrentRounds,
        warmup: 5,
      }).finally(() => concurrentPeer.close()),
    );
    log("concurrent emission measured");
    const stdioPeer = await noopStdioClient();
    const stdio = await loaded("emissionLatencyStdio", () =>
      emissionLatency({ transport: "stdio", root, peer: stdioPeer }, root, SIZES).finally(() => stdioPeer.close()),
    );
    log("emission latency over stdio measured");

    const ingest = await loaded("ingest", () => ingestFigures(root));
    const trackerMemory = await loaded("trackerMemory", () => trackerMemoryFigures());
    log("tracker ingest and memory measured");

    return {
      date: new Date().toISOString(),
      machine,
      durationSeconds: round((performance.now() - began) / 1000, 1),
      quick: QUICK,
      notes: [
        "Every variant runs with OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER set to none: no variant pays for a collector that is not there.",
        "Time to first prompt: from spawning node in a pseudo-terminal to its prompt appearing there; the shell is killed right after, and the next shell waits until any drain helper it left has exited. Ratios are the median of each round's ratio (the two variants measured back to back).",
        `Time to first answer: from spawning node in a pseudo-terminal to \`42\` appearing, with \`6*7\` typed the moment the prompt appeared; bare and register (tracker up) back to back each round. Longest stall: the shell then stays open ${STALL_WINDOW_MS / 1000} s; a probe loaded into both (bench/lib/stall-probe.mjs, a 5 ms interval timer) notes each late firing, and the figure is the longest gap within the ${STALL_WINDOW_MS / 1000} s after the prompt (it includes up to 5 ms of the timer's own period).`,
        "Time to exit: the one exception to the exporters being off: the SDK's default OTLP exporters are on with no Collector listening (as on a machine where none was set up); from typing `.exit` (after the prompt, the banner for register, and 0.5 s; or the moment the prompt appears, while register's telemetry is still loading) to the process having exited.",
        "Emission latency: a shell opened and closed one at a time in a worker process; start = span start to the tracker's answer to track_session_start, end = span end to its answer to track_session_end. The peer is one no-op tool call with the same arguments.",
        "The exporter keeps its connection (over stdio, the tracker process it spawned) open between sessions, unreferenced, for SHELL_SESSIONS_IDLE_CLOSE_MS (5 min by default). The benchmark alternates blocks of sessions with blocks of peer calls, which leave the exporter idle: 'start after an idle gap' is the first start of each block, beside the other starts of the blocks.",
        "Concurrent emission: one process (one exporter) with that many REPLs opened together and then closed together, against the tracker over HTTP, each round in a fresh process warmed by 5 sessions first; the peer is that many no-op calls issued together on one client (each its own HTTP request), after each round.",
        "Ingest: concurrent MCP clients each alternating a session start and its end against a real tracker (SQLite store); the peer gets the same calls on a no-op tool. Raw SQLite inserts the same rows (a session row, its start and its end) with the store's own SQL and schema. Batches: each client alternates one track_session_events call with N starts and one with their N ends, against a second tracker with a store of its own, beside the no-op peer in the same round.",
        `Tracker 'answering after 5 s': an HTTP proxy in front of the real tracker holding every answer back ${SLOW_TRACKER_DELAY_MS} ms.`,
        "Memory: RSS of each shell at its prompt and once its session start is in the tracker (the bare shell after as long). An app that runs NodeSDK already: bench/lib/app-sdk.mjs, imported before the register entry, beside the same app without it; the marginal figure is the median of each round's difference.",
        "loadAverage: the 1-minute load average when each figure began and ended.",
      ],
      sizes: SIZES,
      timeToFirstPrompt,
      timeToFirstAnswer,
      timeToExit,
      emissionLatency: { http: emissionJson(http), stdio: emissionJson(stdio) },
      concurrentEmission: {
        unit: "ms",
        shells: concurrent.shells,
        rounds: concurrent.rounds,
        all: figures(concurrent.all),
        noopPeer: figures(concurrent.peer),
        ratioP50: round(ratio(concurrent.all.p50, concurrent.peer.p50) ?? Number.NaN),
        ratioP99: round(ratio(concurrent.all.p99, concurrent.peer.p99) ?? Number.NaN),
      },
      ingest,
      memory: { shells, tracker: trackerMemory },
      loadAverage: loads,
    };
  } finally {
    await httpPeer.stop();
    await slow.close();
    await tracker.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

/** Writes the figures in the project's own format, so that `npm run lint` (Biome checks bench/) stays clean. */
function writeResults(results: unknown): void {
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  try {
    execFileSync(join(REPO, "node_modules", ".bin", "biome"), ["format", "--write", RESULTS], { stdio: "ignore" });
  } catch {
    log("could not run Biome on the results; `npm run format` will tidy them");
  }
}

const results = await main();
writeResults(results);
process.stdout.write(
  `\n${table(results)}\n\nMeasured on ${results.machine.nproc} × ${results.machine.cpuModel}, ${results.machine.memoryGiB} GiB, Node ${results.machine.node}, in ${results.durationSeconds} s. Figures: ${RESULTS}\n`,
);
