/**
 * One MCP request over Streamable HTTP, in whichever protocol era it speaks.
 *
 * The HTTP layer (http.ts) has already checked Host, Origin, media type, body
 * size and Bearer token, and parsed the body; both eras get exactly those
 * checks. Here the request is routed by era, with the SDK's own classifier:
 *
 * - 2026-07-28 (a `_meta` claim of `io.modelcontextprotocol/protocolVersion`):
 *   the SDK's `createMcpHandler` in strict mode, which answers
 *   `server/discover`, checks the envelope and the routing headers
 *   (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) against the body, and
 *   stamps `resultType` and the cache fields on results.
 * - the handshake era (2025-11-25, 2025-06-18, 2025-03-26, …): a fresh server
 *   on a stateless transport per request, answering plain JSON, as before.
 *
 * Both legs build their server from the same factory, so tools, validation,
 * auth and spans are the same in both eras, and neither keeps anything
 * between requests: any instance on a shared store can answer any request.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type AuthInfo,
  createMcpHandler,
  isLegacyRequest,
  type McpHttpHandler,
  WebStandardStreamableHTTPServerTransport,
} from "@modelcontextprotocol/server";
import type { Logger } from "./log.ts";
import { createMcpServer, type McpServerContext, mcpEntryErrorLogger } from "./mcp.ts";

export type HttpMcpDeps = Omit<McpServerContext, "transport" | "environmentToken"> & { log: Logger };

interface EraRouter {
  modern: McpHttpHandler;
  legacy(request: Request, parsed: unknown, authInfo: AuthInfo | undefined): Promise<Response>;
}

// One router per HTTP server (keyed by its deps), built on its first request.
const routers = new WeakMap<HttpMcpDeps, EraRouter>();

function routerFor(deps: HttpMcpDeps): EraRouter {
  let router = routers.get(deps);
  if (router) return router;
  const factory = () => createMcpServer({ tools: deps.tools, telemetry: deps.telemetry, transport: "tcp" });
  const onerror = mcpEntryErrorLogger(deps.log, "HTTP");
  router = {
    modern: createMcpHandler(factory, { legacy: "reject", onerror }),
    async legacy(request, parsed, authInfo) {
      const server = factory();
      // JSON answers (no SSE stream) for the handshake era, as this endpoint has always given.
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      await server.connect(transport);
      try {
        return await transport.handleRequest(request, { parsedBody: parsed, ...(authInfo ? { authInfo } : {}) });
      } finally {
        // Not awaited: the answer is already made. Settled, though: a failure to close this per-request pair
        // changes nothing for the caller and must not become an unhandled rejection in the tracker.
        void Promise.allSettled([transport.close(), server.close()]);
      }
    },
  };
  routers.set(deps, router);
  return router;
}

/** The Node request as a fetch `Request` (the body is already parsed, so none is attached). */
function webRequest(req: IncomingMessage, signal: AbortSignal): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
  return new Request(url, { method: req.method ?? "POST", headers, signal });
}

async function writeResponse(response: Response, res: ServerResponse): Promise<void> {
  if (res.headersSent) return;
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (response.body) {
    for await (const chunk of response.body) {
      if (res.destroyed) break;
      res.write(chunk);
    }
  }
  res.end();
}

/**
 * Answers one MCP POST whose body `parsed` has been read and checked, in the
 * era the request speaks; `authInfo` carries the verified Bearer token.
 */
export async function serveMcpHttp(
  deps: HttpMcpDeps,
  req: IncomingMessage,
  res: ServerResponse,
  parsed: unknown,
  authInfo: AuthInfo | undefined,
): Promise<void> {
  const router = routerFor(deps);
  const aborted = new AbortController();
  // A client that goes away mid-request aborts the exchange, so the SDK closes its per-request server.
  res.once("close", () => {
    if (!res.writableFinished) aborted.abort();
  });
  const request = webRequest(req, aborted.signal);
  const response = (await isLegacyRequest(request, parsed))
    ? await router.legacy(request, parsed, authInfo)
    : await router.modern.fetch(request, { parsedBody: parsed, ...(authInfo ? { authInfo } : {}) });
  await writeResponse(response, res);
}
