/**
 * The answers the HTTP layer gives before (or instead of) the MCP layer:
 * JSON-RPC error bodies with our `code`, and the status each refusal gets.
 */
import type { ServerResponse } from "node:http";

/** JSON-RPC "server error" range codes for refusals made before the MCP layer. */
export const RPC_SERVER_ERROR = -32000;
export const RPC_UNAUTHENTICATED = -32001;
export const RPC_PARSE_ERROR = -32700;
export const RPC_INTERNAL_ERROR = -32603;

export function rpcError(code: number, message: string, data?: Record<string, unknown>) {
  return { jsonrpc: "2.0", id: null, error: { code, message, ...(data ? { data } : {}) } };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Header text that is safe inside a quoted-string and a log line. */
export function headerSafe(text: string, max = 200): string {
  return text
    .replace(/[^\x20-\x7e]/g, "?")
    .replace(/["\\]/g, "'")
    .slice(0, max);
}

/**
 * A refusal made without reading the body: the connection is closed after
 * the answer, so a client still sending (perhaps slowly, on purpose) holds
 * nothing here.
 */
export function refuse(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extra: { data?: Record<string, unknown>; headers?: Record<string, string> } = {},
): void {
  sendJson(res, status, rpcError(RPC_SERVER_ERROR, message, { code, ...extra.data }), {
    connection: "close",
    ...extra.headers,
  });
}

export function refuseUnauthenticated(res: ServerResponse, reason: string, message: string): void {
  sendJson(
    res,
    401,
    rpcError(RPC_UNAUTHENTICATED, `unauthenticated: ${message}`, { code: "unauthenticated", reason }),
    {
      connection: "close",
      "www-authenticate": `Bearer error="invalid_token", error_description="${headerSafe(message)}"`,
    },
  );
}
