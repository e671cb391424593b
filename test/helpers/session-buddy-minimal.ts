/**
 * A real MCP server that exposes only what the real Session-Buddy exposes —
 * `track_session_start`, `track_session_end`, `health_check` — with its
 * result shapes (a JSON text item plus structuredContent; health as plain
 * text; an auth failure as a bare string). No heartbeat, list or get: the
 * exporter must work against it unchanged.
 *
 * One protocol era only, as a server that has not (or has only) moved to the
 * stateless revision would be:
 * - `--era legacy` (the default): the 2025 handshake era on the v1 SDK
 *   (`@modelcontextprotocol/sdk` 1.32), like Session-Buddy today; it knows
 *   nothing of `server/discover`;
 * - `--era modern`: 2026-07-28 only, on the v2 SDK's serving entries with
 *   their handshake-era serving switched off; it refuses `initialize`.
 *
 * Runnable as a child process:
 *   node test/helpers/session-buddy-minimal.ts --http [--port 0] [--record FILE] [--methods FILE] [--secret=S] [--delay-ms N] [--era legacy|modern]
 *   node test/helpers/session-buddy-minimal.ts --stdio [--record FILE] [--methods FILE] [--secret=S] [--era legacy|modern] [--exit-on-probe]
 * Over HTTP it prints "LISTENING <url>" on stdout once ready. Every call it
 * receives is appended to the record file (JSON lines, token replaced by a
 * flag, `_meta` kept) before it answers, so tests can check what arrived;
 * the method of every JSON-RPC message it receives goes to the methods file.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { createServer, type Server as HttpServer, type IncomingMessage } from "node:http";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { verifyToken } from "../../src/auth/jwt.ts";
import { validateEndEvent, validateStartEvent } from "../../src/contract/index.ts";

export interface RecordedCall {
  tool: string;
  args: Record<string, unknown>;
  tokenPresent: boolean;
  /** Component the token was issued to, when a secret is configured and it verified. */
  tokenComponent?: string;
  meta: Record<string, unknown> | undefined;
  authorization: boolean;
  answer: Record<string, unknown> | string;
  at: string;
}

export type MinimalEra = "legacy" | "modern";

const HERE = fileURLToPath(import.meta.url);
const NODE = process.execPath;

// ---------------------------------------------------------------- server side

interface ServeOptions {
  record: string | undefined;
  methods: string | undefined;
  secret: string | undefined;
  delayMs: number;
  era: MinimalEra;
  /** Over stdio, exit on `server/discover` instead of answering it, as servers on some SDKs do with any unknown request. */
  exitOnProbe: boolean;
}

function stamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getUTCFullYear()}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}-${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}`;
}

const TOOL_LISTING = [
  { name: "track_session_start", description: "Track session start", inputSchema: { type: "object" as const } },
  { name: "track_session_end", description: "Track session end", inputSchema: { type: "object" as const } },
  { name: "health_check", description: "Health", inputSchema: { type: "object" as const } },
];

function noteMethod(options: ServeOptions, message: unknown): void {
  const method = (message as { method?: unknown } | null)?.method;
  if (options.methods !== undefined && typeof method === "string") {
    appendFileSync(options.methods, `${JSON.stringify({ method, at: new Date().toISOString() })}\n`);
  }
}

async function answerTool(
  options: ServeOptions,
  name: string,
  args: Record<string, unknown>,
  token: string | undefined,
): Promise<{ answer: Record<string, unknown> | string; tokenComponent?: string }> {
  if (name === "health_check") return { answer: "Session-Buddy is healthy" };
  if (options.secret !== undefined && token === undefined) return { answer: "Authentication failed: token required" };
  let tokenComponent: string | undefined;
  if (options.secret !== undefined && token !== undefined) {
    try {
      tokenComponent = (await verifyToken(token, options.secret)).component;
    } catch (error) {
      return { answer: `Authentication failed: ${(error as Error).message}` };
    }
  }
  const withToken = { ...args, ...(token ? { token } : {}) };
  try {
    if (name === "track_session_start") {
      const event = validateStartEvent(withToken);
      const sessionId = `${event.component_name}-${stamp(new Date())}-${randomBytes(3).toString("hex")}`;
      return { answer: { session_id: sessionId, status: "tracked" }, ...(tokenComponent ? { tokenComponent } : {}) };
    }
    if (name === "track_session_end") {
      // Like the real one: the session id is echoed, not looked up.
      const event = validateEndEvent(withToken);
      return {
        answer: { session_id: event.session_id, status: "ended" },
        ...(tokenComponent ? { tokenComponent } : {}),
      };
    }
  } catch (error) {
    return { answer: { session_id: null, status: "error", error: (error as Error).message } };
  }
  return { answer: `Unknown tool: ${name}` };
}

/** One tools/call, as Session-Buddy answers it, recorded before the answer. */
async function handleCall(
  options: ServeOptions,
  params: { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> },
  authorization: () => boolean,
) {
  const { name } = params;
  const args = { ...(params.arguments ?? {}) };
  const token = typeof args.token === "string" ? args.token : undefined;
  delete args.token;
  if (options.delayMs > 0) await new Promise((r) => setTimeout(r, options.delayMs));
  const { answer, tokenComponent } = await answerTool(options, name, args, token);
  if (options.record !== undefined && name !== "health_check") {
    const entry: RecordedCall = {
      tool: name,
      args,
      tokenPresent: token !== undefined,
      ...(tokenComponent !== undefined ? { tokenComponent } : {}),
      meta: params._meta,
      authorization: authorization(),
      answer,
      at: new Date().toISOString(),
    };
    appendFileSync(options.record, `${JSON.stringify(entry)}\n`);
  }
  if (typeof answer === "string") return { content: [{ type: "text" as const, text: answer }] };
  return { content: [{ type: "text" as const, text: JSON.stringify(answer) }], structuredContent: answer };
}

async function buildLegacyServer(options: ServeOptions, authorization: () => boolean) {
  const { Server } = await import("@modelcontextprotocol/sdk/server/index.js");
  const { CallToolRequestSchema, ListToolsRequestSchema } = await import("@modelcontextprotocol/sdk/types.js");
  const server = new Server({ name: "session-buddy-minimal", version: "0.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOL_LISTING }));
  server.setRequestHandler(CallToolRequestSchema, async (request) =>
    handleCall(options, request.params as Parameters<typeof handleCall>[1], authorization),
  );
  return server;
}

async function buildModernServer(options: ServeOptions, authorization: () => boolean) {
  const { Server } = await import("@modelcontextprotocol/server");
  const server = new Server({ name: "session-buddy-minimal", version: "0.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler("tools/list", async () => ({ tools: TOOL_LISTING }));
  server.setRequestHandler("tools/call", async (request) =>
    handleCall(options, request.params as Parameters<typeof handleCall>[1], authorization),
  );
  return server;
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.once("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (error) {
        reject(error);
      }
    });
    req.once("error", reject);
  });
}

/** Serves one POST in the handshake era (v1 SDK, stateless, JSON answers). */
async function serveLegacyPost(
  options: ServeOptions,
  req: IncomingMessage,
  res: import("node:http").ServerResponse,
  body: unknown,
) {
  const { StreamableHTTPServerTransport } = await import("@modelcontextprotocol/sdk/server/streamableHttp.js");
  const hasAuth = typeof req.headers.authorization === "string";
  const server = await buildLegacyServer(options, () => hasAuth);
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
}

/** The 2026-07-28-only handler (v2 SDK's entry, handshake era refused). */
async function modernHandler(options: ServeOptions) {
  const { createMcpHandler } = await import("@modelcontextprotocol/server");
  return createMcpHandler(
    ({ requestInfo }) => buildModernServer(options, () => requestInfo?.headers.has("authorization") ?? false),
    { legacy: "reject" },
  );
}

async function serveHttp(port: number, options: ServeOptions): Promise<HttpServer> {
  const modern = options.era === "modern" ? await modernHandler(options) : undefined;
  const http = createServer(async (req, res) => {
    if (!req.url?.startsWith("/mcp")) {
      res.writeHead(404).end();
      return;
    }
    if (req.method !== "POST") {
      // Stateless: no standalone SSE stream, no session to delete.
      res.writeHead(405, { allow: "POST" }).end();
      return;
    }
    res.on("close", () => {
      // A client that gave up (its timeout aborted the request) is recorded: tests check timeouts really abort.
      if (!res.writableFinished && options.record !== undefined) {
        const entry: RecordedCall = {
          tool: "(disconnected)",
          args: {},
          tokenPresent: false,
          meta: undefined,
          authorization: typeof req.headers.authorization === "string",
          answer: "",
          at: new Date().toISOString(),
        };
        appendFileSync(options.record, `${JSON.stringify(entry)}\n`);
      }
    });
    let body: unknown;
    try {
      body = await readJson(req);
    } catch {
      res
        .writeHead(400, { "content-type": "application/json" })
        .end('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}');
      return;
    }
    noteMethod(options, body);
    if (!modern) {
      await serveLegacyPost(options, req, res, body);
      return;
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
    const request = new Request(`http://127.0.0.1${req.url}`, { method: "POST", headers });
    const response = await modern.fetch(request, { parsedBody: body });
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  await new Promise<void>((resolve) => http.listen(port, "127.0.0.1", resolve));
  return http;
}

/** Calls `note` with every message `transport` receives, ahead of whoever consumes them. */
function tapMessages(
  transport: { onmessage?: ((message: never, extra?: never) => void) | undefined },
  note: (m: unknown) => void,
) {
  const inner = transport.onmessage;
  transport.onmessage = (message, extra) => {
    note(message);
    inner?.(message, extra);
  };
}

async function serveStdioEra(options: ServeOptions): Promise<void> {
  if (options.era === "modern") {
    const { serveStdio, StdioServerTransport } = await import("@modelcontextprotocol/server/stdio");
    const wire = new StdioServerTransport();
    serveStdio(() => buildModernServer(options, () => false), { transport: wire, legacy: "reject" });
    tapMessages(wire, (m) => noteMethod(options, m));
    return;
  }
  const { StdioServerTransport } = await import("@modelcontextprotocol/sdk/server/stdio.js");
  const server = await buildLegacyServer(options, () => false);
  const transport = new StdioServerTransport();
  await server.connect(transport);
  tapMessages(transport, (m) => {
    noteMethod(options, m);
    if (options.exitOnProbe && (m as { method?: unknown }).method === "server/discover") process.exit(0);
  });
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      http: { type: "boolean" },
      stdio: { type: "boolean" },
      port: { type: "string", default: "0" },
      record: { type: "string" },
      methods: { type: "string" },
      secret: { type: "string" },
      "delay-ms": { type: "string", default: "0" },
      era: { type: "string", default: "legacy" },
      "exit-on-probe": { type: "boolean", default: false },
    },
  });
  if (values.era !== "legacy" && values.era !== "modern")
    throw new Error(`--era must be legacy or modern, not ${values.era}`);
  const options: ServeOptions = {
    record: values.record,
    methods: values.methods,
    secret: values.secret ?? process.env.SESSION_BUDDY_MINIMAL_SECRET,
    delayMs: Number(values["delay-ms"]),
    era: values.era,
    exitOnProbe: values["exit-on-probe"] ?? false,
  };
  if (values.stdio) {
    await serveStdioEra(options);
    return;
  }
  const http = await serveHttp(Number(values.port), options);
  const address = http.address();
  const port = typeof address === "object" && address ? address.port : 0;
  process.stdout.write(`LISTENING http://127.0.0.1:${port}/mcp\n`);
  // Records are written synchronously, so there is nothing to wait for: stop at once, even with slow calls open.
  const stop = () => {
    http.closeAllConnections();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

// ---------------------------------------------------------------- test side

export interface MinimalOptions {
  record: string;
  secret?: string;
  delayMs?: number;
  /** Default: legacy (the handshake era only, like Session-Buddy). */
  era?: MinimalEra;
  /** A file that receives the method of every JSON-RPC message the server gets. */
  methods?: string;
  /** Legacy over stdio only: exit on `server/discover` rather than answer it. */
  exitOnProbe?: boolean;
}

function optionArgs(options: MinimalOptions): string[] {
  const args = ["--record", options.record];
  if (options.secret !== undefined) args.push(`--secret=${options.secret}`); // "=": a base64url secret may begin with "-"
  if (options.delayMs !== undefined) args.push("--delay-ms", String(options.delayMs));
  if (options.era !== undefined) args.push("--era", options.era);
  if (options.methods !== undefined) args.push("--methods", options.methods);
  if (options.exitOnProbe) args.push("--exit-on-probe");
  return args;
}

/** `SESSION_BUDDY_COMMAND` that spawns this server over stdio (a JSON array: paths with spaces survive). */
export function minimalStdioCommand(options: MinimalOptions): string {
  return JSON.stringify([NODE, HERE, "--stdio", ...optionArgs(options)]);
}

export interface MinimalHttpServer {
  url: string;
  pid: number;
  /** Stops it and waits for the exit. */
  stop(): Promise<void>;
  /** Sends a signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
}

async function spawnHttp(port: number, options: MinimalOptions): Promise<{ child: ChildProcess; url: string }> {
  const args = [HERE, "--http", "--port", String(port), ...optionArgs(options)];
  const child = spawn(NODE, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`minimal server did not start within 20 s: ${stderr}`)), 20_000);
    child.stdout?.on("data", (chunk) => {
      out += String(chunk);
      const m = /LISTENING (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`minimal server exited with ${code} before listening: ${stderr}`));
    });
  });
  return { child, url };
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Starts the minimal server over HTTP as a child process on a free loopback port. */
export async function startMinimalHttp(options: MinimalOptions & { port?: number }): Promise<MinimalHttpServer> {
  let { child, url } = await spawnHttp(options.port ?? 0, options);
  const port = Number(new URL(url).port);
  const handle: MinimalHttpServer = {
    url,
    get pid() {
      return child.pid ?? 0;
    },
    async stop() {
      child.kill("SIGTERM");
      await waitExit(child);
    },
    async kill(signal = "SIGKILL") {
      child.kill(signal);
      await waitExit(child);
    },
    async restart() {
      await handle.stop();
      ({ child, url } = await spawnHttp(port, options));
    },
  };
  return handle;
}

/** The JSON-RPC methods the server received, in order (from the `methods` file). */
export function readMethods(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => (JSON.parse(line) as { method: string }).method);
}

export function readRecords(file: string): RecordedCall[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as RecordedCall);
}

if (process.argv[1] === HERE) {
  main(process.argv.slice(2)).catch((error) => {
    process.stderr.write(`session-buddy-minimal: ${(error as Error).stack}\n`);
    process.exit(1);
  });
}
