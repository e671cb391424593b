/**
 * MCP over Streamable HTTP with `node:http` and the SDK's transport.
 *
 * Stateless: every POST gets a fresh transport and server, and no MCP
 * session id is issued. Each request carries everything it needs (its token,
 * its arguments), the tracker never sends server-initiated messages, and its
 * state lives in the store, so any instance behind a load balancer can answer
 * any request, with no sticky sessions, no in-memory session table to cap or
 * evict, and nothing lost when an instance restarts. GET (a server-to-client
 * stream) and DELETE (ending an MCP session) have nothing to do here and
 * answer 405, which the MCP clients handle.
 *
 * Before the SDK sees a request, this layer checks what the SDK leaves to
 * middleware: the Host and Origin headers (DNS rebinding), the media type,
 * the body size (counted as it arrives, never buffered past the limit) and
 * the Bearer token.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AuthInfo } from "@modelcontextprotocol/server";
import { AuthError, verifyToken } from "../auth/jwt.ts";
import { settledWithin } from "../deadline.ts";
import type { Logger } from "./log.ts";
import { AUTH_INFO_TOKEN_KEY, type McpServerContext } from "./mcp.ts";
import { serveMcpHttp } from "./mcp-http.ts";
import { type AuthMode, type HttpOptions, isLoopbackHost } from "./options.ts";

/** JSON-RPC "server error" range codes for refusals made before the MCP layer. */
const RPC_SERVER_ERROR = -32000;
const RPC_UNAUTHENTICATED = -32001;
const RPC_PARSE_ERROR = -32700;

export interface HttpTrackerServer {
  /** The MCP endpoint, e.g. http://127.0.0.1:8678/mcp. */
  url: string;
  host: string;
  port: number;
  /** Stops accepting, waits (bounded) for requests in flight, then closes every connection. */
  close(): Promise<void>;
}

export interface HttpServerDeps extends Omit<McpServerContext, "transport" | "environmentToken"> {
  auth: AuthMode;
  log: Logger;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function rpcError(code: number, message: string, data?: Record<string, unknown>) {
  return { jsonrpc: "2.0", id: null, error: { code, message, ...(data ? { data } : {}) } };
}

/** Header text that is safe inside a quoted-string and a log line. */
function headerSafe(text: string, max = 200): string {
  return text
    .replace(/[^\x20-\x7e]/g, "?")
    .replace(/["\\]/g, "'")
    .slice(0, max);
}

function hostForUrl(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]"]);

class RequestGuard {
  readonly #origins: Set<string>;
  readonly #hosts: Set<string> | undefined;

  constructor(options: HttpOptions, port: number) {
    const loopbackNames = ["127.0.0.1", "localhost", "[::1]"];
    const own = [...loopbackNames];
    if (!isLoopbackHost(options.host) && !WILDCARD_HOSTS.has(options.host)) own.push(hostForUrl(options.host));
    this.#origins = new Set([
      ...own.flatMap((name) =>
        port === 80 ? [`http://${name}:${port}`, `http://${name}`] : [`http://${name}:${port}`],
      ),
      ...options.allowedOrigins.map((o) => o.toLowerCase()),
    ]);
    const allowedHosts = options.allowedHosts.map((h) => h.toLowerCase());
    if (isLoopbackHost(options.host) || allowedHosts.length > 0) {
      // Bound to loopback, only loopback names can reach us legitimately: anything else is DNS rebinding.
      // On the default HTTP port clients leave the port out of Host, so the bare names count too.
      const ownHosts = own.flatMap((name) => (port === 80 ? [`${name}:${port}`, name] : [`${name}:${port}`]));
      this.#hosts = new Set([...ownHosts, ...allowedHosts]);
    } else {
      // Reachable under names we cannot know (a load balancer's): the Origin check and the tokens still apply.
      this.#hosts = undefined;
    }
  }

  hostAllowed(host: string | undefined): boolean {
    if (this.#hosts === undefined) return true;
    if (host === undefined) return false;
    const lower = host.toLowerCase();
    return this.#hosts.has(lower) || this.#hosts.has(lower.replace(/:\d+$/, ""));
  }

  originAllowed(origin: string | undefined): boolean {
    return origin === undefined || this.#origins.has(origin.toLowerCase());
  }
}

function isJsonMediaType(header: string | undefined): boolean {
  return (header ?? "").split(";")[0]?.trim().toLowerCase() === "application/json";
}

type BodyResult = { ok: true; text: string } | { ok: false; tooLarge: true };

/**
 * Reads the body up to `limit` bytes. Hand-rolled (a few lines) because the
 * refusal must happen here, before a transport and server are built for the
 * request, and must stop storing bytes as soon as the limit is passed.
 */
function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        // Keep reading (and discarding) so the client can finish writing and read our 413.
        resolve({ ok: false, tooLarge: true });
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => {
      if (!done) {
        done = true;
        resolve({ ok: true, text: Buffer.concat(chunks).toString("utf8") });
      }
    });
    req.once("error", (error) => {
      if (!done) {
        done = true;
        reject(error);
      }
    });
  });
}

function bearerToken(header: string): string | undefined {
  const m = /^Bearer[ \t]+([^ \t]+)[ \t]*$/i.exec(header);
  return m?.[1];
}

export async function listenHttp(deps: HttpServerDeps, options: HttpOptions): Promise<HttpTrackerServer> {
  const { auth, log } = deps;
  const inflight = new Set<Promise<void>>();
  let guard: RequestGuard | undefined;
  let closing = false;

  const refuseAuth = (res: ServerResponse, reason: string, message: string) => {
    sendJson(
      res,
      401,
      rpcError(RPC_UNAUTHENTICATED, `unauthenticated: ${message}`, { code: "unauthenticated", reason }),
      {
        "www-authenticate": `Bearer error="invalid_token", error_description="${headerSafe(message)}"`,
      },
    );
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== options.path) {
      sendJson(res, 404, rpcError(RPC_SERVER_ERROR, `not found: the MCP endpoint is ${options.path}`));
      return;
    }
    if (!guard?.hostAllowed(req.headers.host)) {
      sendJson(
        res,
        403,
        rpcError(
          RPC_SERVER_ERROR,
          `forbidden: Host header "${headerSafe(req.headers.host ?? "", 100)}" is not a name of this server (DNS rebinding protection); add it with --allow-host`,
          { code: "forbidden_host" },
        ),
      );
      return;
    }
    const origin = req.headers.origin;
    if (!guard.originAllowed(origin)) {
      sendJson(
        res,
        403,
        rpcError(
          RPC_SERVER_ERROR,
          `forbidden: Origin "${headerSafe(origin ?? "", 100)}" is not allowed (DNS rebinding protection); allow it with --allow-origin`,
          { code: "forbidden_origin" },
        ),
      );
      return;
    }
    if (req.method !== "POST") {
      sendJson(
        res,
        405,
        rpcError(RPC_SERVER_ERROR, "method not allowed: this stateless MCP endpoint takes POST only", {
          code: "method_not_allowed",
        }),
        { allow: "POST" },
      );
      return;
    }
    if (!isJsonMediaType(req.headers["content-type"])) {
      sendJson(
        res,
        415,
        rpcError(RPC_SERVER_ERROR, "unsupported media type: Content-Type must be application/json", {
          code: "unsupported_media_type",
        }),
      );
      return;
    }
    const tooLarge = () =>
      sendJson(
        res,
        413,
        rpcError(RPC_SERVER_ERROR, `payload too large: the request body limit is ${options.bodyLimitBytes} bytes`, {
          code: "payload_too_large",
          limit: options.bodyLimitBytes,
        }),
        { connection: "close" },
      );
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > options.bodyLimitBytes) {
      tooLarge();
      req.resume();
      return;
    }

    let authInfo: AuthInfo | undefined;
    const authorization = req.headers.authorization;
    // With authentication disabled there is nothing to check a header against: it is ignored, like the token argument.
    if (authorization !== undefined && auth.kind === "jwt") {
      const token = bearerToken(authorization);
      if (token === undefined) {
        refuseAuth(res, "malformed", 'the Authorization header must be "Bearer <jwt>"');
        req.resume();
        return;
      }
      try {
        const verified = await verifyToken(token, auth.secret);
        authInfo = {
          // The SDK wants the raw token here; handlers only need the verified claims, so it is not kept.
          token: "",
          clientId: verified.component,
          scopes: verified.scopes ?? [],
          expiresAt: verified.expiresAt,
          extra: { [AUTH_INFO_TOKEN_KEY]: verified },
        };
      } catch (error) {
        if (!(error instanceof AuthError)) throw error;
        refuseAuth(res, error.reason, error.message);
        req.resume();
        return;
      }
    }

    const body = await readBody(req, options.bodyLimitBytes);
    if (!body.ok) {
      tooLarge();
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.text);
    } catch {
      sendJson(res, 400, rpcError(RPC_PARSE_ERROR, "parse error: the request body is not valid JSON"));
      return;
    }

    await serveMcpHttp(deps, req, res, parsed, authInfo);
  };

  const httpServer: Server = createServer((req, res) => {
    if (closing) res.setHeader("connection", "close");
    const work = handle(req, res)
      .catch((error: unknown) => {
        log.error(`HTTP request failed: ${error instanceof Error ? error.message : String(error)}`);
        sendJson(res, 500, rpcError(-32603, "internal error"));
      })
      .finally(() => inflight.delete(work));
    inflight.add(work);
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(options.port, options.host, () => {
      httpServer.off("error", reject);
      resolve();
    });
  });
  const { port } = httpServer.address() as AddressInfo;
  guard = new RequestGuard(options, port);
  const url = `http://${hostForUrl(options.host)}:${port}${options.path}`;

  return {
    url,
    host: options.host,
    port,
    async close() {
      if (closing) return;
      closing = true;
      const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      httpServer.closeIdleConnections();
      await settledWithin(Promise.allSettled([...inflight]), options.shutdownGraceMs, { unref: true });
      httpServer.closeAllConnections();
      await stopped;
    },
  };
}
