/**
 * Wiring one tracker: the store, the auth mode, the tools, the telemetry and
 * the lease sweeper, shared by the HTTP and the stdio entry points.
 */
import type { Readable, Writable } from "node:stream";
import { AuthError, assertSecret, verifyToken } from "../auth/jwt.ts";
import { findOrCreateSecret } from "../auth/secret.ts";
import { defaultStoreSpec, openStore } from "../store/index.ts";
import type { SessionStore } from "../store/types.ts";
import { listenHttp } from "./http.ts";
import { startLeaseSweeper } from "./lease.ts";
import { type Logger, silentLogger } from "./log.ts";
import {
  type AuthMode,
  checkServerOptions,
  DEFAULT_LEASE_SECONDS,
  DEFAULT_MAX_TOKEN_TTL_SECONDS,
  DEFAULT_STORE_TIMEOUT_SECONDS,
  ENV_SECRET,
  type HttpOptions,
  httpOptions,
  isLoopbackHost,
  OptionError,
} from "./options.ts";
import { serveStdio } from "./stdio.ts";
import { ServerTelemetry } from "./telemetry.ts";
import { TrackerTools } from "./tools.ts";

export interface TrackerOptions {
  /** A store, or a spec for it: `sqlite:PATH` or a `postgres://` URL. Default: SQLite in the state dir. A store passed in is not closed by the tracker. */
  store?: SessionStore | string;
  /** The shared secret, at least 32 characters. Default: `SESSION_BUDDY_SECRET`, else the state dir's secret file, generated if missing. */
  secret?: string;
  /** Accept calls with no token at all. Only for local experiments; warned about on start. */
  insecureNoAuth?: boolean;
  /** Also allow `insecureNoAuth` on a non-loopback address. */
  allowInsecureRemote?: boolean;
  /** Seconds without heartbeat or end before a session is abandoned. Default 300. */
  leaseSeconds?: number;
  /** Default: min(lease/4, 30 s). */
  sweepIntervalMs?: number;
  /** A tool call waiting longer on the store answers `unavailable`; also PostgreSQL's connect, acquire and statement timeout. Default 4 s. */
  storeTimeoutMs?: number;
  /** Starts and ends stamped further ahead of the server's clock are refused. Default 300 s. */
  maxClockSkewSeconds?: number;
  /** Tokens valid for longer (exp - iat) are refused. Default 366 days. */
  maxTokenTtlSeconds?: number;
  log?: Logger;
  env?: NodeJS.ProcessEnv;
}

interface Prepared {
  store: SessionStore;
  auth: AuthMode;
  tools: TrackerTools;
  telemetry: ServerTelemetry;
  leaseSeconds: number;
  shutdown(): Promise<void>;
}

function resolveAuth(options: TrackerOptions, log: Logger): AuthMode {
  const env = options.env ?? process.env;
  if (options.insecureNoAuth) {
    log.warn(
      "authentication is DISABLED (--insecure-no-auth): any process that can reach this server can record, end and read every session",
    );
    return { kind: "disabled" };
  }
  const maxTokenTtlSeconds = options.maxTokenTtlSeconds ?? DEFAULT_MAX_TOKEN_TTL_SECONDS;
  if (options.secret !== undefined) {
    return { kind: "jwt", secret: assertSecret(options.secret, "the secret"), maxTokenTtlSeconds };
  }
  const resolved = findOrCreateSecret(env);
  if (resolved.source === "env") {
    log.info(`auth: HS256 tokens signed with the secret from ${ENV_SECRET}`);
  } else if (resolved.source === "file") {
    log.info(`auth: HS256 tokens signed with the secret in ${resolved.path}`);
  } else {
    log.info(
      `auth: no secret was configured, so a new one was generated into ${resolved.path} (mode 0600; local shells of this user read it from there). Mint a token with: shell-sessions token --component NAME`,
    );
  }
  if (resolved.warning) log.warn(resolved.warning);
  return { kind: "jwt", secret: resolved.secret, maxTokenTtlSeconds };
}

async function prepare(options: TrackerOptions): Promise<Prepared> {
  // Before anything is opened: a bad option changes nothing.
  checkServerOptions(options);
  const log = options.log ?? silentLogger;
  const env = options.env ?? process.env;
  const leaseSeconds = options.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
  const auth = resolveAuth(options, log);
  const storeTimeoutMs = options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_SECONDS * 1000;
  const ownsStore = options.store === undefined || typeof options.store === "string";
  const store =
    options.store === undefined || typeof options.store === "string"
      ? await openStore(options.store ?? defaultStoreSpec(env), { timeoutMs: storeTimeoutMs })
      : options.store;
  if (!ownsStore) await store.migrate();
  log.info(`store: ${store.location}`);
  const telemetry = new ServerTelemetry();
  const tools = new TrackerTools({
    store,
    auth,
    leaseSeconds,
    telemetry,
    log,
    storeTimeoutMs,
    ...(options.maxClockSkewSeconds !== undefined ? { maxClockSkewSeconds: options.maxClockSkewSeconds } : {}),
  });
  const sweeper = startLeaseSweeper({
    store,
    leaseSeconds,
    telemetry,
    log,
    ...(options.sweepIntervalMs !== undefined ? { intervalMs: options.sweepIntervalMs } : {}),
  });
  log.info(`lease: ${leaseSeconds} s without heartbeat or end marks a session abandoned`);
  return {
    store,
    auth,
    tools,
    telemetry,
    leaseSeconds,
    async shutdown() {
      await sweeper.stop();
      if (ownsStore) await store.close();
    },
  };
}

export interface HttpTracker {
  /** The MCP endpoint, e.g. http://127.0.0.1:8678/mcp. */
  url: string;
  host: string;
  port: number;
  store: SessionStore;
  /** Stops accepting, finishes requests in flight (bounded), stops the sweeper, closes the store it opened. */
  close(): Promise<void>;
}

/** Starts the tracker on Streamable HTTP. */
export async function startTrackerServer(options: TrackerOptions & Partial<HttpOptions> = {}): Promise<HttpTracker> {
  const log = options.log ?? silentLogger;
  const http = httpOptions(options);
  if (!isLoopbackHost(http.host)) {
    if (options.insecureNoAuth && !options.allowInsecureRemote) {
      throw new OptionError(
        `refusing to serve without authentication on the non-loopback address ${http.host}; drop --insecure-no-auth, or add --allow-insecure-remote if you really mean it`,
      );
    }
    log.warn(
      `listening on ${http.host}, which is not a loopback address: other hosts can reach this server${http.allowedHosts.length === 0 ? "; the Host header is not checked (set --allow-host to check it)" : ""}`,
    );
  }
  const prepared = await prepare(options);
  let server: Awaited<ReturnType<typeof listenHttp>>;
  try {
    server = await listenHttp({ tools: prepared.tools, telemetry: prepared.telemetry, auth: prepared.auth, log }, http);
  } catch (error) {
    await prepared.shutdown();
    throw error;
  }
  return {
    url: server.url,
    host: server.host,
    port: server.port,
    store: prepared.store,
    async close() {
      await server.close();
      await prepared.shutdown();
    },
  };
}

export interface StdioTracker {
  store: SessionStore;
  /** Resolves when the client disconnects. */
  closed: Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the tracker on stdio. `environmentToken` (the `SESSION_BUDDY_TOKEN`
 * the process was given) is verified now, and is the identity of calls that
 * carry no token argument.
 */
export async function startStdioTracker(
  options: TrackerOptions & {
    environmentToken?: string | undefined;
    stdin?: Readable;
    stdout?: Writable;
    maxMessageBytes?: number;
  } = {},
): Promise<StdioTracker> {
  const prepared = await prepare(options);
  const { environmentToken } = options;
  try {
    if (environmentToken !== undefined && prepared.auth.kind === "jwt") {
      try {
        const verified = await verifyToken(environmentToken, prepared.auth.secret, {
          maxLifetimeSeconds: prepared.auth.maxTokenTtlSeconds,
        });
        options.log?.info(`auth: calls without a token act as component "${verified.component}" (SESSION_BUDDY_TOKEN)`);
      } catch (error) {
        if (error instanceof AuthError) throw new AuthError(error.reason, `SESSION_BUDDY_TOKEN: ${error.message}`);
        throw error;
      }
    }
    const served = await serveStdio(
      { tools: prepared.tools, telemetry: prepared.telemetry, environmentToken, log: options.log ?? silentLogger },
      {
        ...(options.stdin ? { stdin: options.stdin } : {}),
        ...(options.stdout ? { stdout: options.stdout } : {}),
        ...(options.maxMessageBytes !== undefined ? { maxMessageBytes: options.maxMessageBytes } : {}),
      },
    );
    const closed = served.closed.then(() => prepared.shutdown());
    return {
      store: prepared.store,
      closed,
      async close() {
        await served.close();
        await closed;
      },
    };
  } catch (error) {
    await prepared.shutdown();
    throw error;
  }
}
