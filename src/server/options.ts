/**
 * Every default of the tracker server, stated once, and the parsing of the
 * settings that come from flags or the environment.
 */
import { z } from "zod";
import { OptionError } from "../option-error.ts";
import { decimal, settingFrom, wholeNumber } from "../settings.ts";

export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8678;
export const DEFAULT_PATH = "/mcp";
/** A session with no heartbeat or end for this long is marked abandoned. */
export const DEFAULT_LEASE_SECONDS = 300;
/** The sweeper runs every lease/4, but at least this often. */
export const MAX_SWEEP_INTERVAL_SECONDS = 30;
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
/**
 * A request without a verified Authorization header must be read to find a
 * `token` argument (Session-Buddy style) or is a tokenless call (initialize,
 * tools/list, health_check). Its body is held to this size (or --max-body,
 * if smaller): a start event with a token is a few KiB.
 */
export const DEFAULT_UNAUTHENTICATED_BODY_LIMIT_BYTES = 64 * 1024;
/** Open connections at most; past it the longest-idle one is closed, or the new one when none is idle. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** Requests being read or handled at once; past it, 503 with Retry-After. */
export const DEFAULT_MAX_REQUESTS = 128;
/** Of those, requests without a verified Authorization header; the rest stay free for callers with one. */
export const DEFAULT_MAX_UNAUTHENTICATED_REQUESTS = 32;
/** A request body must arrive within this long (slow-body attacks), else 408. */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;
/** A connection must send its request headers within this long. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** What 503 answers say in Retry-After. */
export const RETRY_AFTER_SECONDS = 1;
/** A store operation (and so a tool call) answers `unavailable` after this long. */
export const DEFAULT_STORE_TIMEOUT_SECONDS = 4;
/** A start or end stamped further than this ahead of the tracker's clock is refused. */
export const DEFAULT_MAX_CLOCK_SKEW_SECONDS = 300;
/** Tokens valid for longer (exp - iat) are refused, whoever minted them. */
export const DEFAULT_MAX_TOKEN_TTL_SECONDS = 366 * 24 * 3600;
/** How long a stopping server waits for in-flight requests before closing their connections. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
export const DEFAULT_SERVICE_NAME = "shell-sessions-tracker";
export const SERVER_NAME = "shell-sessions-tracker";

export const ENV_SECRET = "SESSION_BUDDY_SECRET";
export const ENV_TOKEN = "SESSION_BUDDY_TOKEN";
export const ENV_LEASE_SECONDS = "SHELL_SESSIONS_LEASE_SECONDS";
export const ENV_STORE = "SHELL_SESSIONS_STORE";

/**
 * How callers are authenticated: by JWTs signed with the shared secret (whose
 * lifetime, exp - iat, is at most `maxTokenTtlSeconds`, default 366 days), or
 * (explicit opt-out) not at all.
 */
export type AuthMode = { kind: "jwt"; secret: string; maxTokenTtlSeconds?: number } | { kind: "disabled" };

export interface HttpOptions {
  host: string;
  port: number;
  path: string;
  bodyLimitBytes: number;
  /** Origins allowed besides the server's own loopback origins. */
  allowedOrigins: string[];
  /** Host header values allowed besides the loopback names with the server's port. */
  allowedHosts: string[];
  shutdownGraceMs: number;
  /** Body limit for requests without a verified Authorization header (never above bodyLimitBytes). */
  unauthenticatedBodyLimitBytes: number;
  maxConnections: number;
  maxRequests: number;
  maxUnauthenticatedRequests: number;
  bodyTimeoutMs: number;
  headersTimeoutMs: number;
}

/** The longest lease, a week: seconds, fractions allowed (for tests). */
const leaseSeconds = z
  .number()
  .gt(0)
  .max(7 * 24 * 3600);
const LEASE_RULE = "a number of seconds greater than 0 and at most 604800";

/**
 * What each option given in code accepts, stated once as zod schemas (the
 * flags' parsers hold their values to ranges at least as narrow). Each entry
 * also says it in words, for the error.
 */
const OPTION_RULES: Record<string, [z.ZodType, string]> = {
  host: [z.string().min(1), "a non-empty host name or address"],
  port: [wholeNumber(0, 65_535), "a whole number from 0 to 65535 (0 picks a free port)"],
  path: [z.string().startsWith("/"), 'a path starting with "/"'],
  bodyLimitBytes: [wholeNumber(1), "a whole number of bytes, at least 1"],
  unauthenticatedBodyLimitBytes: [wholeNumber(1), "a whole number of bytes, at least 1"],
  allowedOrigins: [z.array(z.string()), "an array of origins"],
  allowedHosts: [z.array(z.string()), "an array of host names"],
  shutdownGraceMs: [wholeNumber(0), "a whole number of milliseconds, at least 0"],
  maxConnections: [wholeNumber(1), "a whole number, at least 1"],
  maxRequests: [wholeNumber(1), "a whole number, at least 1"],
  maxUnauthenticatedRequests: [wholeNumber(1), "a whole number, at least 1"],
  bodyTimeoutMs: [wholeNumber(1), "a whole number of milliseconds, at least 1"],
  headersTimeoutMs: [wholeNumber(1), "a whole number of milliseconds, at least 1"],
  leaseSeconds: [leaseSeconds, LEASE_RULE],
  sweepIntervalMs: [wholeNumber(1), "a whole number of milliseconds, at least 1"],
  storeTimeoutMs: [wholeNumber(1), "a whole number of milliseconds, at least 1"],
  maxClockSkewSeconds: [z.number().min(0), "a number of seconds, at least 0"],
  maxTokenTtlSeconds: [z.number().gt(0), "a number of seconds greater than 0"],
};

/**
 * Throws an OptionError naming the first option of `options` (given in code
 * to `startTrackerServer` or `startStdioTracker`) that its rule refuses.
 * Options left undefined take their defaults and are not checked.
 */
export function checkServerOptions(options: object): void {
  for (const [name, value] of Object.entries(options)) {
    const rule = OPTION_RULES[name];
    if (rule === undefined || value === undefined || rule[0].safeParse(value).success) continue;
    throw new OptionError(`option ${name} must be ${rule[1]}`, name);
  }
}

export function httpOptions(overrides: Partial<HttpOptions> = {}): HttpOptions {
  checkServerOptions(overrides);
  const bodyLimitBytes = overrides.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const maxRequests = overrides.maxRequests ?? DEFAULT_MAX_REQUESTS;
  return {
    host: overrides.host ?? DEFAULT_HOST,
    port: overrides.port ?? DEFAULT_PORT,
    path: overrides.path ?? DEFAULT_PATH,
    bodyLimitBytes,
    allowedOrigins: overrides.allowedOrigins ?? [],
    allowedHosts: overrides.allowedHosts ?? [],
    shutdownGraceMs: overrides.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
    unauthenticatedBodyLimitBytes: Math.min(
      bodyLimitBytes,
      overrides.unauthenticatedBodyLimitBytes ?? DEFAULT_UNAUTHENTICATED_BODY_LIMIT_BYTES,
    ),
    maxConnections: overrides.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    maxRequests,
    maxUnauthenticatedRequests: Math.min(
      maxRequests,
      overrides.maxUnauthenticatedRequests ?? DEFAULT_MAX_UNAUTHENTICATED_REQUESTS,
    ),
    bodyTimeoutMs: overrides.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
    headersTimeoutMs: overrides.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS,
  };
}

export function sweepIntervalMs(leaseSeconds: number): number {
  return Math.max(10, Math.round(Math.min(leaseSeconds / 4, MAX_SWEEP_INTERVAL_SECONDS) * 1000));
}

export { OptionError };

/** A lease in seconds: a positive number (fractions allowed, for tests), at most a week. */
export function parseLeaseSeconds(text: string, source: string): number {
  return settingFrom(decimal.pipe(leaseSeconds), text, `${source} must be ${LEASE_RULE}, such as 300`, source);
}

/** The lease from `--lease`, else `SHELL_SESSIONS_LEASE_SECONDS`, else the default. */
export function resolveLeaseSeconds(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number {
  if (flag !== undefined) return parseLeaseSeconds(flag, "--lease");
  const fromEnv = env[ENV_LEASE_SECONDS];
  if (fromEnv !== undefined && fromEnv !== "") return parseLeaseSeconds(fromEnv, ENV_LEASE_SECONDS);
  return DEFAULT_LEASE_SECONDS;
}

/** The store spec from `--store`, else `SHELL_SESSIONS_STORE`, else undefined (the caller's default: SQLite in the state dir). */
export function resolveStoreSpec(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (flag !== undefined) return flag;
  const fromEnv = env[ENV_STORE];
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : undefined;
}

/** Seconds (fractions allowed) from `min` to `max`. */
export function parseSeconds(text: string, source: string, min: number, max: number, example: string): number {
  return settingFrom(
    decimal.pipe(z.number().min(min).max(max)),
    text,
    `${source} must be a number of seconds from ${min} to ${max}, such as ${example}`,
    source,
  );
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds from `3600`, `90m`, `24h`, `7d`; undefined when unreadable, zero, or over `max`. */
export function parseDuration(text: string, max: number): number | undefined {
  const duration = z
    .string()
    .trim()
    .toLowerCase()
    .regex(/^\d+[smhd]?$/)
    .transform((t) => Number(t.replace(/[smhd]$/, "")) * (DURATION_UNITS[t.at(-1) ?? "s"] ?? 1))
    .pipe(z.number().gt(0).max(max));
  const result = duration.safeParse(text);
  return result.success ? result.data : undefined;
}

export function parsePort(text: string): number {
  // Untrimmed, as before: " 80" is not a port.
  const port = z.string().regex(/^\d+$/).transform(Number).pipe(z.number().max(65_535));
  return settingFrom(port, text, "--port must be a whole number from 0 to 65535 (0 picks a free port)", "--port");
}

const BYTE_UNITS: Record<string, number> = { b: 1, k: 1024, m: 1024 * 1024 };

export function parseByteSize(text: string, source: string): number {
  const size = z
    .string()
    .trim()
    .regex(/^\d+\s*(b|k|kb|kib|m|mb|mib)?$/i)
    .transform((t) => {
      const [, count = "", unit = "b"] = /^(\d+)\s*([a-z]*)$/i.exec(t) ?? [];
      return Number(count) * (BYTE_UNITS[unit.toLowerCase().charAt(0) || "b"] ?? 1);
    })
    .pipe(
      z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024),
    );
  return settingFrom(size, text, `${source} must be a size from 1KiB to 64MiB, such as 1048576, 512k or 1m`, source);
}

/** An origin as browsers send it: scheme://host[:port], no path. */
export function parseOrigin(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new OptionError(
      `--allow-origin takes an origin such as http://localhost:3000 (got something that is not a URL)`,
    );
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || (url.pathname !== "/" && url.pathname !== "")) {
    throw new OptionError(
      "--allow-origin takes an origin such as http://localhost:3000: http(s), a host, no path",
      "--allow-origin",
    );
  }
  return url.origin;
}

const LOOPBACK_HOSTS = new Set(["localhost", "::1", "[::1]"]);

/** An IPv4 address in 127.0.0.0/8, written as Node prints addresses (four decimal octets). */
export function isLoopbackIpv4(host: string): boolean {
  const octets = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return octets?.slice(1).every((o) => Number(o) <= 255) ?? false;
}

/** localhost, ::1, or any address of 127.0.0.0/8. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.toLowerCase()) || isLoopbackIpv4(host);
}
