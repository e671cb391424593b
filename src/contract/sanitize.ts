/**
 * Making host data fit the contract before it is sent.
 *
 * Host facts are not under our control (a 300-character username, a cwd with
 * newlines, a hostname with escape sequences), and a shell must never fail to
 * start, nor an event be rejected, because of them. Everything here is total:
 * it never throws and always returns data the schemas accept.
 */
import { randomUUID } from "node:crypto";
import {
  CWD_MAX,
  canonicalUuidV4,
  EVENT_VERSION,
  HOME_MAX,
  PID_MAX,
  PID_MIN,
  type SessionEndEvent,
  type SessionStartEvent,
  USERNAME_MAX,
} from "./schemas.ts";

/** C0 and C1 controls, DEL, line/paragraph separators, and bidi overrides/isolates. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export const HOSTNAME_MAX = 255;
export const SHELL_TYPE_MAX = 200;
export const COMPONENT_NAME_MAX = 100;
export const TEXT_FIELD_MAX = 500;
export const METADATA_STRING_MAX = 2000;
export const METADATA_KEYS_MAX = 64;
export const METADATA_DEPTH_MAX = 6;
export const METADATA_ARRAY_MAX = 64;

function toText(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return "";
  try {
    return String(value);
  } catch {
    return "";
  }
}

/** Truncate to at most `max` code points without splitting a surrogate pair. */
export function truncateCodePoints(value: string, max: number): string {
  if (value.length <= max) return value;
  let out = "";
  let n = 0;
  for (const ch of value) {
    if (n >= max) break;
    out += ch;
    n++;
  }
  return out;
}

/** Printable text of at most `max` code points; control characters become spaces, then runs collapse. */
export function sanitizeText(value: unknown, max: number = TEXT_FIELD_MAX): string {
  const text = toText(value).toWellFormed().replace(CONTROL, " ").replace(/ {2,}/g, " ").trim();
  return truncateCodePoints(text, max);
}

/** A component name the contract accepts: other characters become `_`; empty becomes `unknown`. */
export function sanitizeComponentName(value: unknown): string {
  const name = truncateCodePoints(toText(value).replace(/[^a-zA-Z0-9_-]/g, "_"), COMPONENT_NAME_MAX);
  return /[a-zA-Z0-9]/.test(name) ? name : "unknown";
}

export function sanitizePid(value: unknown): number {
  const n = typeof value === "number" ? value : Number(toText(value));
  if (!Number.isFinite(n)) return PID_MIN;
  return Math.min(PID_MAX, Math.max(PID_MIN, Math.trunc(n)));
}

/** ISO 8601 UTC with milliseconds; an unusable date becomes now. */
export function toTimestamp(value?: Date | number | string): string {
  const date = value === undefined ? new Date() : new Date(value);
  return Number.isNaN(date.getTime()) ? new Date().toISOString() : date.toISOString();
}

const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Metadata as plain JSON: bounded depth, keys, array length and string size;
 * functions, symbols and cycles dropped; bigints as strings; non-finite
 * numbers as null; prototype-polluting keys removed.
 */
export function sanitizeMetadata(value: unknown): Record<string, unknown> {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v === "boolean") return v;
    if (typeof v === "number") return Number.isFinite(v) ? v : null;
    if (typeof v === "string") return sanitizeText(v, METADATA_STRING_MAX);
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Date) return toTimestamp(v);
    if (typeof v !== "object") return undefined;
    if (seen.has(v) || depth >= METADATA_DEPTH_MAX) return undefined;
    seen.add(v);
    try {
      if (Array.isArray(v)) {
        return v.slice(0, METADATA_ARRAY_MAX).map((item) => walk(item, depth + 1) ?? null);
      }
      const out: Record<string, unknown> = {};
      let count = 0;
      for (const key of Object.keys(v)) {
        if (count >= METADATA_KEYS_MAX) break;
        const cleanKey = sanitizeText(key, 100);
        if (cleanKey.length === 0 || FORBIDDEN_KEYS.has(cleanKey)) continue;
        const item = walk((v as Record<string, unknown>)[key], depth + 1);
        if (item === undefined) continue;
        out[cleanKey] = item;
        count++;
      }
      return out;
    } catch {
      // A getter or proxy that throws: drop that branch rather than the event.
      return undefined;
    } finally {
      seen.delete(v);
    }
  };
  const result = walk(value, 0);
  return result !== null && typeof result === "object" && !Array.isArray(result)
    ? (result as Record<string, unknown>)
    : {};
}

/** Host facts as gathered, possibly odd; every field optional. */
export interface StartFacts {
  eventId?: string;
  componentName?: unknown;
  shellType?: unknown;
  timestamp?: Date | number | string;
  pid?: unknown;
  username?: unknown;
  home?: unknown;
  hostname?: unknown;
  platform?: unknown;
  cwd?: unknown;
  /** Session-Buddy requires `environment.python_version`; a Node shell reports what it is instead. */
  runtimeVersion?: unknown;
  metadata?: unknown;
  token?: string;
}

/** A `track_session_start` payload that always validates, whatever the host data. */
export function buildStartEvent(facts: StartFacts): SessionStartEvent {
  const username = sanitizeText(facts.username, USERNAME_MAX);
  return {
    event_version: EVENT_VERSION,
    event_id: (facts.eventId !== undefined ? canonicalUuidV4(facts.eventId) : null) ?? randomUUID(),
    event_type: "session_start",
    component_name: sanitizeComponentName(facts.componentName),
    shell_type: sanitizeText(facts.shellType, SHELL_TYPE_MAX) || "REPLServer",
    timestamp: toTimestamp(facts.timestamp),
    pid: sanitizePid(facts.pid ?? process.pid),
    user: {
      username: username || "unknown",
      home: sanitizeText(facts.home, HOME_MAX),
    },
    hostname: sanitizeText(facts.hostname, HOSTNAME_MAX) || "unknown",
    environment: {
      python_version: sanitizeText(facts.runtimeVersion, 100) || `n/a (node ${process.version})`,
      platform: sanitizeText(facts.platform, 100) || process.platform,
      cwd: sanitizeText(facts.cwd, CWD_MAX),
    },
    metadata: sanitizeMetadata(facts.metadata),
    ...(facts.token !== undefined ? { token: facts.token } : {}),
  };
}

export interface EndFacts {
  sessionId: string;
  timestamp?: Date | number | string;
  metadata?: unknown;
  token?: string;
}

/** A `track_session_end` payload that always validates, given a non-empty session id. */
export function buildEndEvent(facts: EndFacts): SessionEndEvent {
  return {
    session_id: facts.sessionId,
    timestamp: toTimestamp(facts.timestamp),
    event_type: "session_end",
    metadata: sanitizeMetadata(facts.metadata),
    ...(facts.token !== undefined ? { token: facts.token } : {}),
  };
}
