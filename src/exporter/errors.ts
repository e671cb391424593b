/**
 * What can go wrong when an event is sent, sorted into what delivery does
 * about it:
 * - transient: the tracker could not be reached or failed; retry, then spool;
 *   counts towards opening the circuit;
 * - rejected: the tracker answered no (auth, invalid, unknown session);
 *   retrying at once cannot help; keep the event in the spool for a later fix;
 * - short_circuited: the circuit is open; spool without calling;
 * - aborted: this process stopped the call (shutdown, exit grace); spool.
 *
 * Messages are made safe to log: server text is sanitised and anything that
 * looks like a JWT is redacted.
 */
import { ContractError, ErrorCode, safeServerText } from "../contract/index.ts";
import { mentionsCredentials } from "../contract/result.ts";

export type FailureKind = "transient" | "rejected" | "short_circuited" | "aborted";

export class DeliveryFailure extends Error {
  override readonly name = "DeliveryFailure";
  readonly kind: FailureKind;
  /** Low-cardinality value for the `error.type` attribute. */
  readonly errorType: string;
  /** True for rejections of the credentials (missing, invalid, wrong component). */
  readonly auth: boolean;
  constructor(kind: FailureKind, errorType: string, message: string, auth = false) {
    super(safeServerText(message));
    this.kind = kind;
    this.errorType = errorType;
    this.auth = auth;
  }
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED",
]);

function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== null && typeof current === "object"; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    const suffix = cause instanceof Error && cause.message !== error.message ? ` (${cause.message})` : "";
    return `${error.message}${suffix}`;
  }
  return String(error);
}

/**
 * The JSON-RPC error in an HTTP error body, which the MCP SDK quotes whole in
 * its message ("Error POSTing to endpoint: {…}"): our tracker puts its error
 * code in `error.data.code`.
 */
function rpcErrorInBody(message: string): { message?: string; code?: string } | undefined {
  const start = message.indexOf("{");
  if (start < 0) return undefined;
  try {
    const body = JSON.parse(message.slice(start)) as { error?: { message?: unknown; data?: { code?: unknown } } };
    const text = body.error?.message;
    const code = body.error?.data?.code;
    return {
      ...(typeof text === "string" ? { message: text } : {}),
      ...(typeof code === "string" ? { code } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * HTTP 401/403: named by the tracker's error code (as a result error would
 * be), told in its own words, read from the response `body` when the client
 * kept it, else from the client's message.
 */
export function credentialsRefused(status: 401 | 403, message: string, body?: string): DeliveryFailure {
  const rpc = rpcErrorInBody(body ?? message);
  const known = ErrorCode.safeParse(rpc?.code);
  const errorType = status === 401 ? "unauthenticated" : known.success ? known.data : `http_${status}`;
  return new DeliveryFailure("rejected", errorType, rpc?.message ?? message, true);
}

/** Sort a thrown error into a DeliveryFailure. Never throws. */
export function classifyError(error: unknown): DeliveryFailure {
  if (error instanceof DeliveryFailure) return error;
  const message = messageOf(error);
  if (error instanceof ContractError) return fromContractCode(error.code, message);
  if (error !== null && typeof error === "object") {
    // The MCP SDK's own errors were sorted by `instanceof` where the client caught them (mcp-errors.ts).
    if ((error as { code?: unknown }).code === "EOPENBREAKER") {
      return new DeliveryFailure(
        "short_circuited",
        "circuit_open",
        "the circuit is open: the tracker failed repeatedly",
      );
    }
    const name = (error as { name?: unknown }).name;
    if (name === "AbortError" || name === "TimeoutError") return new DeliveryFailure("transient", "timeout", message);
  }
  const code = errorCode(error);
  if (code === "ENOENT" || code === "EACCES") return new DeliveryFailure("transient", "spawn_failed", message);
  if (code !== undefined && NETWORK_CODES.has(code))
    return new DeliveryFailure("transient", code.toLowerCase(), message);
  if (error instanceof TypeError && /fetch failed/i.test(error.message)) {
    return new DeliveryFailure("transient", "network", message);
  }
  return new DeliveryFailure(
    "transient",
    error instanceof Error ? error.name.toLowerCase() || "error" : "error",
    message,
  );
}

/** An error *result* from the tracker (`status: "error"`, or `not_found` for an end). */
export function fromResultError(code: ErrorCode | undefined, text: string | undefined, tool: string): DeliveryFailure {
  const message = `${tool} answered an error: ${text ?? "(no message)"}`;
  if (code !== undefined) return fromContractCode(code, message);
  // The real Session-Buddy sends only an error string: recognise auth by its words.
  if (text !== undefined && mentionsCredentials(text))
    return new DeliveryFailure("rejected", "unauthenticated", message, true);
  return new DeliveryFailure("rejected", "tracker_error", message);
}

function fromContractCode(code: ErrorCode, message: string): DeliveryFailure {
  switch (code) {
    case "unauthenticated":
    case "permission_denied":
      return new DeliveryFailure("rejected", code, message, true);
    case "unavailable":
      return new DeliveryFailure("transient", code, message);
    case "internal":
      // Our contract raises `internal` for a result it cannot read; a tracker raises it for its own faults.
      return new DeliveryFailure("transient", code, message);
    default:
      return new DeliveryFailure("rejected", code, message);
  }
}
