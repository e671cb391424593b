/**
 * The MCP client's own errors (SDK v2: `SdkHttpError`, `SdkError`,
 * `ProtocolError`) sorted into delivery failures, with the same kinds and
 * `error.type` values the rest of delivery already uses. Anything else
 * (network errors, aborts) is left to `classifyError`.
 */
import { credentialsRefused, DeliveryFailure } from "./errors.ts";

/** The SDK module, passed in: the exporter loads it only when it first connects. */
type Sdk = typeof import("@modelcontextprotocol/client");

// JSON-RPC codes (numbers from the JSON-RPC and MCP specifications).
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;

function fromHttpStatus(status: number, message: string, body?: unknown): DeliveryFailure {
  if (status === 401 || status === 403)
    return credentialsRefused(status, message, typeof body === "string" ? body : undefined);
  if (status === 413) return new DeliveryFailure("rejected", "http_413", message);
  return new DeliveryFailure("transient", status > 0 ? `http_${status}` : "http_error", message);
}

function fromProtocolCode(code: number, message: string): DeliveryFailure {
  if (code === INVALID_PARAMS) return new DeliveryFailure("rejected", "invalid_params", message);
  if (code === METHOD_NOT_FOUND) return new DeliveryFailure("rejected", "method_not_found", message);
  return new DeliveryFailure("transient", `mcp_${Math.abs(code)}`, message);
}

/** A DeliveryFailure for an error the MCP SDK raised, or undefined for any other error. */
export function failureFromMcpError(sdk: Sdk, error: unknown): DeliveryFailure | undefined {
  const { ProtocolError, SdkError, SdkErrorCode, SdkHttpError } = sdk;
  if (error instanceof SdkHttpError) return fromHttpStatus(error.status, error.message, error.data?.text);
  if (error instanceof ProtocolError) return fromProtocolCode(error.code, error.message);
  if (!(error instanceof SdkError)) return undefined;
  switch (error.code) {
    case SdkErrorCode.RequestTimeout:
      return new DeliveryFailure("transient", "timeout", error.message);
    case SdkErrorCode.ConnectionClosed:
      return new DeliveryFailure("transient", "connection_closed", error.message);
    case SdkErrorCode.ClientHttpAuthentication:
      return fromHttpStatus(401, error.message);
    case SdkErrorCode.ClientHttpForbidden:
      return fromHttpStatus(403, error.message);
    default:
      return new DeliveryFailure("transient", error.code.toLowerCase(), error.message);
  }
}

/** Statuses that say something about the request or the caller, not about the protocol era. */
const NOT_ERA_EVIDENCE = new Set([401, 403, 408, 413, 429]);

/**
 * Whether a failed connect says the remembered era no longer fits the server
 * (it answered, but not in that era), rather than that it could not be reached.
 */
export function isEraMismatch(sdk: Sdk, error: unknown): boolean {
  const { ProtocolError, SdkError, SdkErrorCode, SdkHttpError } = sdk;
  if (error instanceof SdkHttpError)
    return error.status >= 400 && error.status < 500 && !NOT_ERA_EVIDENCE.has(error.status);
  if (error instanceof ProtocolError) return true;
  return (
    error instanceof SdkError &&
    (error.code === SdkErrorCode.EraNegotiationFailed ||
      error.code === SdkErrorCode.MethodNotSupportedByProtocolVersion)
  );
}

/** Whether a first connect failed because the server closed the connection on the `server/discover` probe. */
export function isProbeCutOff(sdk: Sdk, error: unknown): boolean {
  return error instanceof sdk.SdkError && error.code === sdk.SdkErrorCode.EraNegotiationFailed;
}
