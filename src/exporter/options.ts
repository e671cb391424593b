/**
 * Every default of session-event delivery, stated once, and every environment
 * variable it reads, read once (in `resolveDeliveryOptions`).
 *
 * A bad value never stops a shell: it is reported with the variable's name and
 * the fix, and the default is used instead.
 */
import { join } from "node:path";
import { isDeliveryOff } from "../journal/switch.ts";
import { OptionError } from "../option-error.ts";
import { parseCount, wholeNumber } from "../settings.ts";
import { stateDir } from "../state-dir.ts";
import { splitCommandLine } from "./command-line.ts";

export { OptionError };

export const DEFAULT_URL = "http://127.0.0.1:8678/mcp";

export const DEFAULTS = {
  /** Each MCP request (tools/call, and each step of a connect) is aborted after this long; a whole connect gets 3×. */
  callTimeoutMs: 5_000,
  /** Attempts per event in one delivery (the first included). */
  retryAttempts: 4,
  /** First backoff ceiling; each retry doubles it, and full jitter picks a delay in [0, ceiling). */
  retryBaseDelayMs: 100,
  retryMaxDelayMs: 2_000,
  /** No retry starts once this much time has passed since the first attempt. */
  retryMaxElapsedMs: 10_000,
  /** The circuit opens after this many consecutive failed calls (the original plan asked for 3). */
  breakerFailures: 3,
  /** How long an open circuit fails fast before letting one probe call through (half-open). */
  breakerResetMs: 5_000,
  /** Events waiting in memory; beyond this they go straight to the spool. */
  queueMax: 1_000,
  /** Events of different sessions sent at once; a session's own events go one after another, its start first. */
  sendConcurrency: 8,
  spoolMaxEvents: 10_000,
  spoolMaxBytes: 16 * 1024 * 1024,
  /** First pause between background passes over the spool; doubles while passes leave work behind. */
  spoolRetryMs: 5_000,
  spoolRetryMaxMs: 5 * 60_000,
  /** Rejected events (auth, invalid) are tried again in the background only this rarely; `spool drain` tries them at once. */
  rejectedRetryMs: 15 * 60_000,
  /** Well under the tracker's default lease of 300 s; 0 turns heartbeats off. */
  heartbeatMs: 60_000,
  /**
   * Once no session is active, delivery keeps the process alive at most this
   * long to send what is left (a warm call takes milliseconds). A program
   * that exits then leaves the rest to the drain helper, so exits stay
   * instant; one that runs on keeps sending it.
   */
  exitGraceMs: 250,
  /**
   * The connection to the tracker (and a stdio tracker it spawned) stays open
   * between sessions, never keeping the process alive, and is closed after
   * this long with nothing to send; the write-ahead journal and its drain
   * helper are kept as long. A shell opened after a pause finds them ready,
   * and a program whose shells are long closed keeps no helper or tracker
   * process beside it. 0 lets them go as soon as nothing is left to send.
   */
  idleCloseMs: 5 * 60_000,
  /** forceFlush waits at most this long for sends in flight (they are spooled first, so waiting is only an optimisation). */
  flushTimeoutMs: 1_500,
  /** A later process starts draining the spool this long after start-up, away from the first prompt. */
  startupDrainDelayMs: 1_000,
  /** Lifetime of a minted token; a new one is minted when less than a tenth of it is left. */
  tokenTtlSeconds: 3_600,
  /**
   * The drain helper a process leaves behind keeps trying to deliver what it
   * left for this long, then gives up (the events stay in the spool, and the
   * next shell or `shell-sessions spool drain` delivers them).
   */
  helperTimeoutMs: 15 * 60_000,
} as const;

export const SPOOL_FILE_NAME = "spool.db";

export const ENV = {
  delivery: "SHELL_SESSIONS_DELIVERY",
  url: "SESSION_BUDDY_URL",
  command: "SESSION_BUDDY_COMMAND",
  token: "SESSION_BUDDY_TOKEN",
  secret: "SESSION_BUDDY_SECRET",
  log: "SHELL_SESSIONS_LOG",
  callTimeoutMs: "SHELL_SESSIONS_CALL_TIMEOUT_MS",
  retryAttempts: "SHELL_SESSIONS_RETRY_ATTEMPTS",
  retryMaxElapsedMs: "SHELL_SESSIONS_RETRY_MAX_ELAPSED_MS",
  breakerFailures: "SHELL_SESSIONS_BREAKER_FAILURES",
  breakerResetMs: "SHELL_SESSIONS_BREAKER_RESET_MS",
  queueMax: "SHELL_SESSIONS_QUEUE_MAX",
  spoolMaxEvents: "SHELL_SESSIONS_SPOOL_MAX_EVENTS",
  spoolMaxBytes: "SHELL_SESSIONS_SPOOL_MAX_BYTES",
  spoolRetryMs: "SHELL_SESSIONS_SPOOL_RETRY_MS",
  heartbeatMs: "SHELL_SESSIONS_HEARTBEAT_MS",
  exitGraceMs: "SHELL_SESSIONS_EXIT_GRACE_MS",
  idleCloseMs: "SHELL_SESSIONS_IDLE_CLOSE_MS",
  flushTimeoutMs: "SHELL_SESSIONS_FLUSH_TIMEOUT_MS",
  helperTimeoutMs: "SHELL_SESSIONS_HELPER_TIMEOUT_MS",
} as const;

export type TransportSpec = { kind: "http"; url: URL } | { kind: "stdio"; command: string; args: string[] };

export interface DeliveryOptions {
  transport: TransportSpec;
  /**
   * Nothing was configured: `transport` is the default URL, and when nothing
   * answers there, sessions go to the local store instead (embedded.ts).
   */
  embedded: boolean;
  /** A ready JWT (`SESSION_BUDDY_TOKEN`), used for every component. */
  token: string | undefined;
  /** The environment to read the secret from (env var or the local tracker's secret file), and to pass to a stdio server. */
  env: NodeJS.ProcessEnv;
  spoolPath: string;
  callTimeoutMs: number;
  retryAttempts: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  retryMaxElapsedMs: number;
  breakerFailures: number;
  breakerResetMs: number;
  queueMax: number;
  sendConcurrency: number;
  spoolMaxEvents: number;
  spoolMaxBytes: number;
  spoolRetryMs: number;
  spoolRetryMaxMs: number;
  rejectedRetryMs: number;
  heartbeatMs: number;
  exitGraceMs: number;
  idleCloseMs: number;
  flushTimeoutMs: number;
  startupDrainDelayMs: number;
  tokenTtlSeconds: number;
  helperTimeoutMs: number;
}

export interface OptionProblem {
  variable: string;
  message: string;
}

export type ResolvedDelivery =
  | { enabled: false; reason: string; problems: OptionProblem[] }
  | { enabled: true; options: DeliveryOptions; problems: OptionProblem[] };

type IntKey =
  | "callTimeoutMs"
  | "retryAttempts"
  | "retryMaxElapsedMs"
  | "breakerFailures"
  | "breakerResetMs"
  | "queueMax"
  | "spoolMaxEvents"
  | "spoolMaxBytes"
  | "spoolRetryMs"
  | "heartbeatMs"
  | "exitGraceMs"
  | "idleCloseMs"
  | "flushTimeoutMs"
  | "helperTimeoutMs";

/** Allowed range per numeric setting: [min, max]. */
const RANGES: Record<IntKey, readonly [number, number]> = {
  callTimeoutMs: [100, 300_000],
  retryAttempts: [1, 20],
  retryMaxElapsedMs: [0, 600_000],
  breakerFailures: [1, 100],
  breakerResetMs: [100, 3_600_000],
  queueMax: [1, 1_000_000],
  spoolMaxEvents: [1, 10_000_000],
  spoolMaxBytes: [64 * 1024, 1024 * 1024 * 1024],
  spoolRetryMs: [50, 3_600_000],
  heartbeatMs: [0, 3_600_000],
  exitGraceMs: [0, 600_000],
  idleCloseMs: [0, 24 * 3_600_000],
  flushTimeoutMs: [0, 600_000],
  helperTimeoutMs: [0, 24 * 3_600_000],
};

export function parseUrl(text: string, variable: string): URL {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new OptionError(`${variable} must be an http(s) URL such as ${DEFAULT_URL}`, variable);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OptionError(`${variable} must be an http(s) URL such as ${DEFAULT_URL}`, variable);
  }
  if (url.username || url.password) {
    // Credentials in a URL end up in logs; the token has its own variable.
    throw new OptionError(`${variable} must not contain a user or password; set SESSION_BUDDY_TOKEN instead`, variable);
  }
  return url;
}

export function parseCommand(text: string, variable: string): { command: string; args: string[] } {
  const words = splitCommandLine(text, variable);
  const [command, ...args] = words;
  if (command === undefined) {
    throw new OptionError(`${variable} is empty; set it to a command such as "shell-sessions serve --stdio"`, variable);
  }
  return { command, args };
}

export { isDeliveryOff };

/** The host's spool file: one per state dir, shared by every process that uses the package. */
export function spoolPathFor(env: NodeJS.ProcessEnv): string {
  return join(stateDir(env), SPOOL_FILE_NAME);
}

/**
 * Read the environment once. Overrides (from CLI flags or code) win over the
 * environment and are not validated here: their callers validate them.
 */
export function resolveDeliveryOptions(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<DeliveryOptions> = {},
): ResolvedDelivery {
  const problems: OptionProblem[] = [];
  const switchValue = env[ENV.delivery];
  if (isDeliveryOff(switchValue)) {
    return { enabled: false, reason: `${ENV.delivery}=${switchValue?.trim()}`, problems };
  }
  if (switchValue !== undefined && switchValue !== "" && !/^(on|1|true|yes|enabled?)$/i.test(switchValue.trim())) {
    problems.push({ variable: ENV.delivery, message: `${ENV.delivery} must be "on" or "off"; delivery stays on` });
  }
  const target = transportFromEnv(env, problems);
  if ("unusable" in target) return { enabled: false, reason: `${target.unusable} is unusable`, problems };
  const options: DeliveryOptions = {
    ...optionsFromEnv(env, target, problems),
    ...checkedOverrides(overrides, problems),
  };
  return { enabled: true, options, problems };
}

/**
 * Overrides given in code, held to the ranges the variables are: a bad one
 * is reported like a bad variable (named, with the fix) and left out, so the
 * variable's value or the default applies.
 */
function checkedOverrides(overrides: Partial<DeliveryOptions>, problems: OptionProblem[]): Partial<DeliveryOptions> {
  const checked: Partial<DeliveryOptions> = { ...overrides };
  for (const key of Object.keys(RANGES) as IntKey[]) {
    const [min, max] = RANGES[key];
    if (!(key in overrides) || wholeNumber(min, max).safeParse(overrides[key]).success) continue;
    problems.push({ variable: key, message: `option ${key} must be a whole number from ${min} to ${max}; ignored` });
    delete checked[key];
  }
  return checked;
}

/**
 * The tracker to deliver to, and whether it is the embedded default (no
 * variable names one); or the name of the variable that names it unusably.
 */
type EnvTransport = { transport: TransportSpec; embedded: boolean } | { unusable: string };

/**
 * The tracker the environment names (a command wins over a URL), else the
 * default URL. A variable that is set but unusable turns delivery off rather
 * than send sessions somewhere else: `unusable` is its name.
 */
function transportFromEnv(env: NodeJS.ProcessEnv, problems: OptionProblem[]): EnvTransport {
  const commandText = env[ENV.command];
  const urlText = env[ENV.url];
  if (commandText !== undefined && commandText.trim() !== "") {
    return parsedTransport(ENV.command, problems, () => ({ kind: "stdio", ...parseCommand(commandText, ENV.command) }));
  }
  if (urlText !== undefined && urlText.trim() !== "") {
    return parsedTransport(ENV.url, problems, () => ({ kind: "http", url: parseUrl(urlText, ENV.url) }));
  }
  return { transport: { kind: "http", url: new URL(DEFAULT_URL) }, embedded: true };
}

/** What `parse` makes of `variable`; when it throws, the problem is added and the variable is unusable. */
function parsedTransport(variable: string, problems: OptionProblem[], parse: () => TransportSpec): EnvTransport {
  try {
    return { transport: parse(), embedded: false };
  } catch (error) {
    problems.push({ variable, message: `${(error as Error).message}; delivery is off` });
    return { unusable: variable };
  }
}

/** Every setting from the environment, a bad value replaced by its default (and added to `problems`). */
function optionsFromEnv(
  env: NodeJS.ProcessEnv,
  { transport, embedded }: { transport: TransportSpec; embedded: boolean },
  problems: OptionProblem[],
): DeliveryOptions {
  const int = (key: IntKey): number => intFromEnv(env, key, problems);
  return {
    transport,
    embedded,
    token: env[ENV.token]?.trim() || undefined,
    env,
    spoolPath: spoolPathFor(env),
    callTimeoutMs: int("callTimeoutMs"),
    retryAttempts: int("retryAttempts"),
    retryBaseDelayMs: DEFAULTS.retryBaseDelayMs,
    retryMaxDelayMs: DEFAULTS.retryMaxDelayMs,
    retryMaxElapsedMs: int("retryMaxElapsedMs"),
    breakerFailures: int("breakerFailures"),
    breakerResetMs: int("breakerResetMs"),
    queueMax: int("queueMax"),
    sendConcurrency: DEFAULTS.sendConcurrency,
    spoolMaxEvents: int("spoolMaxEvents"),
    spoolMaxBytes: int("spoolMaxBytes"),
    spoolRetryMs: int("spoolRetryMs"),
    spoolRetryMaxMs: DEFAULTS.spoolRetryMaxMs,
    rejectedRetryMs: DEFAULTS.rejectedRetryMs,
    heartbeatMs: int("heartbeatMs"),
    exitGraceMs: int("exitGraceMs"),
    idleCloseMs: int("idleCloseMs"),
    flushTimeoutMs: int("flushTimeoutMs"),
    startupDrainDelayMs: DEFAULTS.startupDrainDelayMs,
    tokenTtlSeconds: DEFAULTS.tokenTtlSeconds,
    helperTimeoutMs: int("helperTimeoutMs"),
  };
}

function intFromEnv(env: NodeJS.ProcessEnv, key: IntKey, problems: OptionProblem[]): number {
  const variable = ENV[key];
  const text = env[variable];
  if (text === undefined || text === "") return DEFAULTS[key];
  try {
    return parseCount(text, variable, ...RANGES[key]);
  } catch (error) {
    problems.push({ variable, message: `${(error as Error).message}; using ${DEFAULTS[key]}` });
    return DEFAULTS[key];
  }
}

/** Where the target is, for messages: never includes credentials. */
export function describeTransport(transport: TransportSpec): string {
  if (transport.kind === "http") return `${transport.url.origin}${transport.url.pathname}`;
  return `stdio: ${transport.command}${transport.args.length > 0 ? ` ${transport.args.join(" ")}` : ""}`;
}
