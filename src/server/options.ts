/**
 * Every default of the tracker server, stated once, and the parsing of the
 * settings that come from flags or the environment.
 */

export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8678;
export const DEFAULT_PATH = "/mcp";
/** A session with no heartbeat or end for this long is marked abandoned. */
export const DEFAULT_LEASE_SECONDS = 300;
/** The sweeper runs every lease/4, but at least this often. */
export const MAX_SWEEP_INTERVAL_SECONDS = 30;
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
/** How long a stopping server waits for in-flight requests before closing their connections. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
export const DEFAULT_SERVICE_NAME = "shell-sessions-tracker";
export const SERVER_NAME = "shell-sessions-tracker";

export const ENV_SECRET = "SESSION_BUDDY_SECRET";
export const ENV_TOKEN = "SESSION_BUDDY_TOKEN";
export const ENV_LEASE_SECONDS = "SHELL_SESSIONS_LEASE_SECONDS";
export const ENV_STORE = "SHELL_SESSIONS_STORE";

/** How callers are authenticated: by JWTs signed with the shared secret, or (explicit opt-out) not at all. */
export type AuthMode = { kind: "jwt"; secret: string } | { kind: "disabled" };

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
}

export function httpOptions(overrides: Partial<HttpOptions> = {}): HttpOptions {
  return {
    host: overrides.host ?? DEFAULT_HOST,
    port: overrides.port ?? DEFAULT_PORT,
    path: overrides.path ?? DEFAULT_PATH,
    bodyLimitBytes: overrides.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    allowedOrigins: overrides.allowedOrigins ?? [],
    allowedHosts: overrides.allowedHosts ?? [],
    shutdownGraceMs: overrides.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
  };
}

export function sweepIntervalMs(leaseSeconds: number): number {
  return Math.max(10, Math.round(Math.min(leaseSeconds / 4, MAX_SWEEP_INTERVAL_SECONDS) * 1000));
}

/** Thrown for a setting that cannot be used; the message names where it came from and the fix. */
export class OptionError extends Error {
  override readonly name = "OptionError";
}

/** A lease in seconds: a positive number (fractions allowed, for tests), at most a week. */
export function parseLeaseSeconds(text: string, source: string): number {
  const value = Number(text.trim());
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0 || value > 7 * 24 * 3600) {
    throw new OptionError(`${source} must be a number of seconds greater than 0 and at most 604800, such as 300`);
  }
  return value;
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

export function parsePort(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > 65535) {
    throw new OptionError("--port must be a whole number from 0 to 65535 (0 picks a free port)");
  }
  return value;
}

export function parseByteSize(text: string, source: string): number {
  const m = /^(\d+)\s*(b|k|kb|kib|m|mb|mib)?$/i.exec(text.trim());
  const unit = (m?.[2] ?? "b").toLowerCase();
  const factor = unit.startsWith("k") ? 1024 : unit.startsWith("m") ? 1024 * 1024 : 1;
  const value = m ? Number(m[1]) * factor : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1024 || value > 64 * 1024 * 1024) {
    throw new OptionError(`${source} must be a size from 1KiB to 64MiB, such as 1048576, 512k or 1m`);
  }
  return value;
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
    throw new OptionError("--allow-origin takes an origin such as http://localhost:3000: http(s), a host, no path");
  }
  return url.origin;
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.toLowerCase()) || /^127\.\d+\.\d+\.\d+$/.test(host);
}
