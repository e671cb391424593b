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
 * Before the SDK sees a request, this layer does what the SDK leaves to
 * middleware, cheapest first and without reading the body: the path, the
 * Host and Origin headers (DNS rebinding), the method and media type, the
 * declared length, the Bearer token, and admission (a slot among the
 * requests in flight, else 503). Only then is the body read, against a size
 * limit and a deadline; a request without a verified header gets a smaller
 * limit and a smaller share of the slots, since anyone can send one.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AuthInfo } from "@modelcontextprotocol/server";
import { AuthError } from "../auth/jwt.ts";
import { settledWithin } from "../deadline.ts";
import { verifyWith } from "./auth.ts";
import { readBody } from "./http-body.ts";
import { hostForUrl, RequestGuard } from "./http-guard.ts";
import { ConnectionLimiter, RequestSlots } from "./http-limits.ts";
import {
  headerSafe,
  RPC_INTERNAL_ERROR,
  RPC_PARSE_ERROR,
  refuse,
  refuseUnauthenticated,
  rpcError,
  sendJson,
} from "./http-reply.ts";
import type { Logger } from "./log.ts";
import { LogThrottle } from "./log-throttle.ts";
import { AUTH_INFO_TOKEN_KEY, type McpServerContext } from "./mcp.ts";
import { serveMcpHttp } from "./mcp-http.ts";
import { type AuthMode, type HttpOptions, RETRY_AFTER_SECONDS } from "./options.ts";

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

/** One request on its way through the checks. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  authInfo?: AuthInfo;
}

/** A check answers (and returns true) when the request must go no further. */
type Check = (x: Exchange) => boolean;

function isJsonMediaType(header: string | undefined): boolean {
  return (header ?? "").split(";")[0]?.trim().toLowerCase() === "application/json";
}

function bearerToken(header: string): string | undefined {
  return /^Bearer[ \t]+([^ \t]+)[ \t]*$/i.exec(header)?.[1];
}

/** The checks that need only the request line and headers, in order. */
function headerChecks(options: HttpOptions, guard: () => RequestGuard): Check[] {
  return [
    ({ req, res }) => {
      if ((req.url ?? "/").split("?")[0] === options.path) return false;
      refuse(res, 404, "not_found", `not found: the MCP endpoint is ${options.path}`);
      return true;
    },
    ({ req, res }) => {
      if (guard().hostAllowed(req.headers.host)) return false;
      const host = headerSafe(req.headers.host ?? "", 100);
      refuse(
        res,
        403,
        "forbidden_host",
        `forbidden: Host header "${host}" is not a name of this server (DNS rebinding protection); add it with --allow-host`,
      );
      return true;
    },
    ({ req, res }) => {
      if (guard().originAllowed(req.headers.origin)) return false;
      const origin = headerSafe(req.headers.origin ?? "", 100);
      refuse(
        res,
        403,
        "forbidden_origin",
        `forbidden: Origin "${origin}" is not allowed (DNS rebinding protection); allow it with --allow-origin`,
      );
      return true;
    },
    ({ req, res }) => {
      if (req.method === "POST") return false;
      refuse(res, 405, "method_not_allowed", "method not allowed: this stateless MCP endpoint takes POST only", {
        headers: { allow: "POST" },
      });
      return true;
    },
    ({ req, res }) => {
      if (isJsonMediaType(req.headers["content-type"])) return false;
      refuse(res, 415, "unsupported_media_type", "unsupported media type: Content-Type must be application/json");
      return true;
    },
    ({ req, res }) => {
      const declared = Number(req.headers["content-length"]);
      if (!(Number.isFinite(declared) && declared > options.bodyLimitBytes)) return false;
      refuseTooLarge(res, options.bodyLimitBytes);
      return true;
    },
  ];
}

function refuseTooLarge(res: ServerResponse, limit: number): void {
  refuse(res, 413, "payload_too_large", `payload too large: the request body limit is ${limit} bytes`, {
    data: { limit },
  });
}

/** Verifies a Bearer header, if any; true when it refused the request. With auth disabled the header is ignored. */
async function checkBearer(x: Exchange, auth: AuthMode): Promise<boolean> {
  const header = x.req.headers.authorization;
  if (header === undefined || auth.kind !== "jwt") return false;
  const token = bearerToken(header);
  if (token === undefined) {
    refuseUnauthenticated(x.res, "malformed", 'the Authorization header must be "Bearer <jwt>"');
    return true;
  }
  try {
    const verified = await verifyWith(auth, token);
    x.authInfo = {
      // The SDK wants the raw token here; handlers only need the verified claims, so it is not kept.
      token: "",
      clientId: verified.component,
      scopes: verified.scopes ?? [],
      expiresAt: verified.expiresAt,
      extra: { [AUTH_INFO_TOKEN_KEY]: verified },
    };
    return false;
  } catch (error) {
    if (!(error instanceof AuthError)) throw error;
    refuseUnauthenticated(x.res, error.reason, error.message);
    return true;
  }
}

/** The body as JSON; answers (and returns undefined) when it is too large, too slow, gone or not JSON. */
async function readJson(
  x: Exchange,
  options: HttpOptions,
  anonymous: boolean,
): Promise<{ value: unknown } | undefined> {
  const limit = anonymous ? options.unauthenticatedBodyLimitBytes : options.bodyLimitBytes;
  const body = await readBody(x.req, limit, options.bodyTimeoutMs);
  switch (body.kind) {
    case "too_large":
      refuseTooLarge(x.res, limit);
      return undefined;
    case "timeout":
      refuse(
        x.res,
        408,
        "request_timeout",
        `request timeout: the body did not arrive within ${options.bodyTimeoutMs} ms`,
      );
      return undefined;
    case "aborted":
      x.res.destroy();
      return undefined;
  }
  try {
    return { value: JSON.parse(body.text) };
  } catch {
    sendJson(x.res, 400, rpcError(RPC_PARSE_ERROR, "parse error: the request body is not valid JSON"));
    return undefined;
  }
}

class FrontDoor {
  readonly #deps: HttpServerDeps;
  readonly #options: HttpOptions;
  readonly #checks: Check[];
  readonly slots: RequestSlots;
  readonly connections: ConnectionLimiter;
  readonly throttle: LogThrottle;
  guard: RequestGuard | undefined;

  constructor(deps: HttpServerDeps, options: HttpOptions) {
    this.#deps = deps;
    this.#options = options;
    this.#checks = headerChecks(options, () => this.guard as RequestGuard);
    this.slots = new RequestSlots(options.maxRequests, options.maxUnauthenticatedRequests);
    this.connections = new ConnectionLimiter(options.maxConnections);
    this.throttle = new LogThrottle(deps.log);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const x: Exchange = { req, res };
    res.once("close", () => this.connections.idle(req.socket));
    if (this.#checks.some((check) => check(x))) return;
    if (await checkBearer(x, this.#deps.auth)) return;
    const anonymous = this.#deps.auth.kind === "jwt" && x.authInfo === undefined;
    const release = this.slots.enter(!anonymous);
    if (release === undefined) {
      this.#refuseBusy(res);
      return;
    }
    res.once("close", release);
    const parsed = await readJson(x, this.#options, anonymous);
    // The MCP layer picks the protocol era (mcp-http.ts); every check above applies to both.
    if (parsed !== undefined) await serveMcpHttp(this.#deps, x.req, x.res, parsed.value, x.authInfo);
  }

  #refuseBusy(res: ServerResponse): void {
    refuse(res, 503, "overloaded", `overloaded: too many requests in flight; retry in ${RETRY_AFTER_SECONDS} s`, {
      headers: { "retry-after": String(RETRY_AFTER_SECONDS) },
    });
    this.throttle.write("warn", "requests refused with 503", () => {
      const shed = this.connections.takeShedCount();
      return `requests refused with 503: ${this.slots.inFlight} in flight (limits --max-requests ${this.#options.maxRequests}, --max-unauthenticated-requests ${this.#options.maxUnauthenticatedRequests})${shed > 0 ? `; ${shed} idle connections closed to stay under --max-connections ${this.#options.maxConnections}` : ""}`;
    });
  }

  failed(res: ServerResponse, error: unknown): void {
    this.throttle.write("error", "HTTP request failed", () => {
      return `HTTP request failed: ${error instanceof Error ? error.message : String(error)}`;
    });
    sendJson(res, 500, rpcError(RPC_INTERNAL_ERROR, "internal error"));
  }
}

function listen(server: Server, options: HttpOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

export async function listenHttp(deps: HttpServerDeps, options: HttpOptions): Promise<HttpTrackerServer> {
  const door = new FrontDoor(deps, options);
  const inflight = new Set<Promise<void>>();
  let closing = false;
  const httpServer = createServer(
    // A connection must send its headers, and its whole request, in bounded time; checked every second.
    {
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.headersTimeoutMs + options.bodyTimeoutMs,
      connectionsCheckingInterval: 1000,
    },
    (req, res) => {
      if (closing) res.setHeader("connection", "close");
      const work = door
        .handle(req, res)
        .catch((error: unknown) => door.failed(res, error))
        .finally(() => inflight.delete(work));
      inflight.add(work);
    },
  );
  door.connections.attach(httpServer);
  await listen(httpServer, options);
  const { port } = httpServer.address() as AddressInfo;
  door.guard = new RequestGuard(options, port);
  return {
    url: `http://${hostForUrl(options.host)}:${port}${options.path}`,
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
      door.throttle.flush();
    },
  };
}
