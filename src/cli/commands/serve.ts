/** `shell-sessions serve`: run the Session-Buddy-compatible tracker server. */
import { AuthError, SecretError } from "../../auth/jwt.ts";
import { secretFilePath } from "../../auth/secret.ts";
import { type Logger, stderrLogger } from "../../server/log.ts";
import {
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_HOST,
  DEFAULT_LEASE_SECONDS,
  DEFAULT_MAX_CLOCK_SKEW_SECONDS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_REQUESTS,
  DEFAULT_MAX_TOKEN_TTL_SECONDS,
  DEFAULT_MAX_UNAUTHENTICATED_REQUESTS,
  DEFAULT_PATH,
  DEFAULT_PORT,
  DEFAULT_SERVICE_NAME,
  DEFAULT_STORE_TIMEOUT_SECONDS,
  ENV_LEASE_SECONDS,
  ENV_SECRET,
  ENV_STORE,
  ENV_TOKEN,
  OptionError,
  parseByteSize,
  parseDuration,
  parseOrigin,
  parsePort,
  parseSeconds,
  resolveLeaseSeconds,
  resolveStoreSpec,
  sweepIntervalMs,
} from "../../server/options.ts";
import { type ServerSdk, startServerSdk } from "../../server/otel-sdk.ts";
import { startStdioTracker, startTrackerServer, type TrackerOptions } from "../../server/tracker.ts";
import { parseCount } from "../../settings.ts";
import { parseCommandArgs, usageError } from "../args.ts";
import { boundYoungGeneration, SEMI_SPACE_FLAG } from "../young-generation.ts";

export const usage = `Usage: shell-sessions serve [options]

Run the tracker server: a Session-Buddy-compatible MCP server that records
admin shell sessions. MCP over Streamable HTTP at http://${DEFAULT_HOST}:${DEFAULT_PORT}${DEFAULT_PATH}
by default, or over stdio for clients that spawn it.

Options:
  --host HOST              address to bind (default ${DEFAULT_HOST}); a non-loopback
                           address is reachable from other hosts and prints a warning
  --port PORT              TCP port (default ${DEFAULT_PORT}; 0 picks a free port)
  --stdio                  serve MCP on stdin/stdout instead of HTTP
  --store SPEC             where sessions are kept: sqlite:PATH or a postgres:// URL
                           (default $${ENV_STORE}, else sqlite:<state dir>/tracker.db)
  --lease SECONDS          a session with no heartbeat or end for this long is marked
                           abandoned (default $${ENV_LEASE_SECONDS}, else ${DEFAULT_LEASE_SECONDS})
  --allow-origin ORIGIN    also accept browser requests from ORIGIN, e.g.
                           http://localhost:3000 (repeatable; other foreign origins get 403)
  --allow-host HOST[:PORT] also accept this Host header (repeatable; needed behind a
                           proxy or load balancer when binding a loopback address)
  --max-body SIZE          request body limit, e.g. 1048576, 512k, 1m (default 1m);
                           larger requests get 413. Requests without a verified
                           Authorization header are held to 64k (or SIZE, if smaller)
  --max-connections N      open connections at most (default ${DEFAULT_MAX_CONNECTIONS}); past it the
                           longest-idle connection is closed
  --max-requests N         requests read or handled at once (default ${DEFAULT_MAX_REQUESTS}); past it 503
                           with Retry-After
  --max-unauthenticated-requests N
                           of those, requests without a verified Authorization header
                           (default ${DEFAULT_MAX_UNAUTHENTICATED_REQUESTS})
  --store-timeout SECONDS  a call waiting longer on the store answers "unavailable";
                           also PostgreSQL's connect, acquire and statement timeout
                           (default ${DEFAULT_STORE_TIMEOUT_SECONDS})
  --max-clock-skew SECONDS starts and ends stamped further ahead of this server's clock
                           are refused (default ${DEFAULT_MAX_CLOCK_SKEW_SECONDS})
  --max-token-ttl DURATION tokens valid for longer (exp - iat) are refused, e.g. 30d
                           (default 366d)
  --insecure-no-auth       DANGEROUS: accept calls without any token. Refused with a
                           non-loopback --host unless --allow-insecure-remote is given too
  --allow-insecure-remote  allow --insecure-no-auth on a non-loopback address
  -h, --help               show this help

Environment:
  ${ENV_SECRET}      the shared HS256 secret (at least 32 characters). If unset,
                            the secret file in the state dir is used; on first start one
                            is generated there (mode 0600) so local shells of the same
                            user find it. A shorter secret refuses to start.
  ${ENV_TOKEN}       with --stdio: the identity of calls that carry no token
                            argument (verified on start)
  SHELL_SESSIONS_STATE_DIR  the state dir (default $XDG_STATE_HOME/otel-shell-sessions,
                            else ~/.local/state/otel-shell-sessions)
  ${ENV_STORE}, ${ENV_LEASE_SECONDS}   defaults for --store and --lease
  NODE_OPTIONS              over HTTP the server restarts itself once at start-up, same
                            process id, with ${SEMI_SPACE_FLAG} (it bounds
                            memory under connection churn) unless NODE_OPTIONS or node
                            flags already set --max-semi-space-size
  OTEL_*                    standard OpenTelemetry settings for the server's own spans
                            and metrics, e.g. OTEL_TRACES_EXPORTER=otlp,
                            OTEL_METRICS_EXPORTER=prometheus (port 9464, or
                            OTEL_EXPORTER_PROMETHEUS_PORT), OTEL_SDK_DISABLED=true;
                            service.name defaults to ${DEFAULT_SERVICE_NAME}

Examples:
  shell-sessions serve
  shell-sessions serve --port 0 --store sqlite:/var/lib/tracker/tracker.db --lease 120
  ${ENV_SECRET}=$(cat /etc/tracker/secret) shell-sessions serve \\
      --store postgres://tracker@db.internal:5432/tracker --host 0.0.0.0
`;

const options = {
  host: { type: "string" },
  port: { type: "string" },
  stdio: { type: "boolean" },
  store: { type: "string" },
  lease: { type: "string" },
  "allow-origin": { type: "string", multiple: true },
  "allow-host": { type: "string", multiple: true },
  "max-body": { type: "string" },
  "max-connections": { type: "string" },
  "max-requests": { type: "string" },
  "max-unauthenticated-requests": { type: "string" },
  "store-timeout": { type: "string" },
  "max-clock-skew": { type: "string" },
  "max-token-ttl": { type: "string" },
  "insecure-no-auth": { type: "boolean" },
  "allow-insecure-remote": { type: "boolean" },
} as const;

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
function untilSignal(): { signal: Promise<string>; dispose(): void } {
  let onSignal: (signal: string) => void = () => {};
  const signal = new Promise<string>((resolve) => {
    let seen = false;
    onSignal = (name: string) => {
      if (seen) {
        process.stderr.write(`shell-sessions serve: ${name} again, exiting now\n`);
        process.exit(130);
      }
      seen = true;
      resolve(name);
    };
  });
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal,
    dispose() {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

const command = { name: "serve", usage, options } as const;

type Values = Partial<Record<keyof typeof options, string | boolean | string[]>>;

interface Settings {
  host: string;
  port: number;
  leaseSeconds: number;
  bodyLimitBytes: number;
  allowedOrigins: string[];
  allowedHosts: string[];
  store: string | undefined;
  maxConnections: number;
  maxRequests: number;
  maxUnauthenticatedRequests: number;
  storeTimeoutMs: number;
  maxClockSkewSeconds: number;
  maxTokenTtlSeconds: number;
}

/** `flag`'s value through `parse`, else `fallback`. */
function flag<T>(values: Values, name: keyof typeof options, parse: (text: string) => T, fallback: T): T {
  const value = values[name];
  return typeof value === "string" ? parse(value) : fallback;
}

function parseTokenTtl(text: string): number {
  const seconds = parseDuration(text, 10 * 366 * 86400);
  if (seconds === undefined) {
    throw new OptionError(
      "--max-token-ttl must be a positive duration such as 3600, 90m, 24h or 30d",
      "--max-token-ttl",
    );
  }
  return seconds;
}

/** Every flag, parsed; throws OptionError naming the flag and the fix. */
function readSettings(values: Values): Settings {
  const counts = (name: keyof typeof options, fallback: number) =>
    flag(values, name, (t) => parseCount(t, `--${name}`, 1, 1_000_000), fallback);
  return {
    host: flag(values, "host", (t) => t, DEFAULT_HOST),
    port: flag(values, "port", parsePort, DEFAULT_PORT),
    leaseSeconds: resolveLeaseSeconds(typeof values.lease === "string" ? values.lease : undefined),
    bodyLimitBytes: flag(values, "max-body", (t) => parseByteSize(t, "--max-body"), DEFAULT_BODY_LIMIT_BYTES),
    allowedOrigins: ((values["allow-origin"] as string[] | undefined) ?? []).map(parseOrigin),
    allowedHosts: (values["allow-host"] as string[] | undefined) ?? [],
    store: resolveStoreSpec(typeof values.store === "string" ? values.store : undefined),
    maxConnections: counts("max-connections", DEFAULT_MAX_CONNECTIONS),
    maxRequests: counts("max-requests", DEFAULT_MAX_REQUESTS),
    maxUnauthenticatedRequests: counts("max-unauthenticated-requests", DEFAULT_MAX_UNAUTHENTICATED_REQUESTS),
    storeTimeoutMs:
      1000 *
      flag(
        values,
        "store-timeout",
        (t) => parseSeconds(t, "--store-timeout", 0.1, 600, "4"),
        DEFAULT_STORE_TIMEOUT_SECONDS,
      ),
    maxClockSkewSeconds: flag(
      values,
      "max-clock-skew",
      (t) => parseSeconds(t, "--max-clock-skew", 0, 366 * 86400, "300"),
      DEFAULT_MAX_CLOCK_SKEW_SECONDS,
    ),
    maxTokenTtlSeconds: flag(values, "max-token-ttl", parseTokenTtl, DEFAULT_MAX_TOKEN_TTL_SECONDS),
  };
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(command, args);
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;

  const log = stderrLogger();
  let settings: Settings;
  try {
    settings = readSettings(values);
  } catch (error) {
    if (error instanceof OptionError) return usageError(command, error.message);
    throw error;
  }
  const stdio = values.stdio === true;
  prepareProcess(stdio);

  const sdk = startServerSdk();
  const signals = untilSignal();
  const common = trackerOptions(values, settings, log);
  let tracker: Running;
  try {
    tracker = stdio
      ? await startStdio(common, settings, signals.signal, log)
      : await startHttp(common, settings, signals.signal, log);
  } catch (error) {
    signals.dispose();
    await sdk.shutdown();
    return startFailure(error);
  }
  logStarted(log, sdk, settings);

  const reason = await tracker.done;
  signals.dispose();
  await stop(tracker, reason, sdk, log);
  // Should a library leave a handle open, still exit once the work is done.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  return 0;
}

/** Readies the process for the chosen transport, before anything is opened. */
function prepareProcess(stdio: boolean): void {
  // This may replace the process (same pid) with itself under a heap flag.
  if (!stdio) boundYoungGeneration();
  if (stdio) {
    // Stdout carries the protocol: anything printed there (a console exporter, a stray log) would corrupt it.
    console.log = console.error;
    console.info = console.error;
    console.debug = console.error;
  }
}

/** A started tracker: how to stop it, and what it waits for before stopping. */
interface Running {
  close(): Promise<void>;
  /** Resolves with the reason to stop. */
  done: Promise<string>;
}

/** The options both transports share. */
function trackerOptions(values: Values, settings: Settings, log: Logger): TrackerOptions {
  return {
    insecureNoAuth: values["insecure-no-auth"] === true,
    allowInsecureRemote: values["allow-insecure-remote"] === true,
    leaseSeconds: settings.leaseSeconds,
    storeTimeoutMs: settings.storeTimeoutMs,
    maxClockSkewSeconds: settings.maxClockSkewSeconds,
    maxTokenTtlSeconds: settings.maxTokenTtlSeconds,
    log,
    ...(settings.store !== undefined ? { store: settings.store } : {}),
  };
}

async function startStdio(
  common: TrackerOptions,
  settings: Settings,
  signal: Promise<string>,
  log: Logger,
): Promise<Running> {
  const envToken = process.env[ENV_TOKEN];
  const tracker = await startStdioTracker({
    ...common,
    ...(envToken ? { environmentToken: envToken } : {}),
    maxMessageBytes: settings.bodyLimitBytes,
  });
  log.info(`serving MCP on stdio`);
  // The client closing stdin ends the server as a signal would.
  return { close: () => tracker.close(), done: Promise.race([signal, tracker.closed.then(() => "end of input")]) };
}

async function startHttp(
  common: TrackerOptions,
  settings: Settings,
  signal: Promise<string>,
  log: Logger,
): Promise<Running> {
  const tracker = await startTrackerServer({
    ...common,
    host: settings.host,
    port: settings.port,
    bodyLimitBytes: settings.bodyLimitBytes,
    allowedOrigins: settings.allowedOrigins,
    allowedHosts: settings.allowedHosts,
    maxConnections: settings.maxConnections,
    maxRequests: settings.maxRequests,
    maxUnauthenticatedRequests: settings.maxUnauthenticatedRequests,
  });
  log.info(`listening on ${tracker.url}`);
  return { close: () => tracker.close(), done: signal };
}

/** Reports why the tracker did not start; returns the exit code (2 for a bad option, else 1). */
function startFailure(error: unknown): number {
  if (error instanceof SecretError || error instanceof AuthError || error instanceof OptionError) {
    process.stderr.write(`shell-sessions serve: ${error.message}\n`);
    if (error instanceof SecretError && process.env[ENV_SECRET] === undefined) {
      process.stderr.write(`(the secret file is ${secretFilePath()})\n`);
    }
    return error instanceof OptionError ? 2 : 1;
  }
  const code = (error as NodeJS.ErrnoException).code;
  process.stderr.write(
    `shell-sessions serve: could not start: ${error instanceof Error ? error.message : String(error)}${code === "EADDRINUSE" ? " (pick another --port, or 0 for a free one)" : ""}\n`,
  );
  return 1;
}

function logStarted(log: Logger, sdk: ServerSdk, settings: Settings): void {
  log.info(
    sdk.enabled
      ? `telemetry: OpenTelemetry SDK on (service.name ${sdk.serviceName}; exporters from the OTEL_* environment)`
      : "telemetry: OpenTelemetry SDK disabled (OTEL_SDK_DISABLED)",
  );
  log.info(`lease sweep every ${sweepIntervalMs(settings.leaseSeconds) / 1000} s`);
}

/** Lets requests in flight finish, then flushes the server's own telemetry; never throws. */
async function stop(tracker: Running, reason: string, sdk: ServerSdk, log: Logger): Promise<void> {
  log.info(`stopping (${reason}): finishing requests in flight`);
  try {
    await tracker.close();
  } catch (error) {
    log.error(`error while stopping: ${error instanceof Error ? error.message : String(error)}`);
  }
  await sdk.shutdown();
  log.info("stopped");
}
