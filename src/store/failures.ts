/**
 * Why a store operation failed, in a few fixed words: safe to return to a
 * caller and to log (a driver's own message may name hosts, paths or users),
 * and a closed set, so it may also label a metric.
 */

export const STORE_FAILURES = [
  "timed out",
  "connection failed",
  "not accepting connections",
  "disk full",
  "read-only",
  "damaged database",
  "locked",
  "I/O error",
  "error",
] as const;
export type StoreFailure = (typeof STORE_FAILURES)[number];

/** Primary SQLite result codes (node:sqlite reports them as `errcode`, possibly extended). */
const SQLITE: Record<number, StoreFailure> = {
  5: "locked",
  6: "locked",
  8: "read-only",
  10: "I/O error",
  11: "damaged database",
  13: "disk full",
  14: "I/O error",
  26: "damaged database",
};

/** PostgreSQL SQLSTATEs and their classes. */
const POSTGRES: Record<string, StoreFailure> = {
  "53100": "disk full",
  "25006": "read-only",
  "55P03": "locked",
  "57014": "timed out",
  "58030": "I/O error",
  XX001: "damaged database",
  XX002: "damaged database",
  "53300": "not accepting connections",
  "57P01": "not accepting connections",
  "57P03": "not accepting connections",
};

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EHOSTUNREACH", "ETIMEDOUT", "EPIPE"]);

export function storeFailure(error: unknown): StoreFailure {
  if (!(error instanceof Error)) return "error";
  const { code, errcode } = error as Error & { code?: unknown; errcode?: unknown };
  if (typeof errcode === "number") return SQLITE[errcode & 0xff] ?? "error";
  if (typeof code === "string") {
    if (POSTGRES[code]) return POSTGRES[code];
    if (NETWORK_CODES.has(code)) return "connection failed";
  }
  if (/timeout|timed out/i.test(error.message)) return "timed out";
  if (/connection terminated|connection refused|not queryable/i.test(error.message)) return "connection failed";
  return "error";
}

/** A store operation that did not finish within the configured timeout. */
export class StoreTimeoutError extends Error {
  override readonly name = "StoreTimeoutError";
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`the session store did not answer within ${timeoutMs} ms (timeout)`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * `work`, or a StoreTimeoutError after `timeoutMs`: whatever the driver does,
 * the caller gets an answer in bounded time. The work itself carries on (its
 * own timeouts end it); its late failure is swallowed here.
 */
export function withinTimeout<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeoutError(timeoutMs)), timeoutMs);
  });
  work.catch(() => {});
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
