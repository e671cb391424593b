/**
 * A real MCP server that exposes only what the real Session-Buddy exposes —
 * `track_session_start`, `track_session_end`, `health_check` — with its
 * result shapes (a JSON text item plus structuredContent; health as plain
 * text; an auth failure as a bare string). No heartbeat, list or get: the
 * exporter must work against it unchanged.
 *
 * Runnable as a child process:
 *   node test/helpers/session-buddy-minimal.ts --http [--port 0] [--record FILE] [--secret S] [--delay-ms N]
 *   node test/helpers/session-buddy-minimal.ts --stdio [--record FILE] [--secret S]
 * Over HTTP it prints "LISTENING <url>" on stdout once ready. Every call it
 * receives is appended to the record file (JSON lines, token replaced by a
 * flag, `_meta` kept) before it answers, so tests can check what arrived.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
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

const HERE = fileURLToPath(import.meta.url);
const NODE = process.execPath;

// ---------------------------------------------------------------- server side

interface ServeOptions {
  record: string | undefined;
  secret: string | undefined;
  delayMs: number;
}

function stamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getUTCFullYear()}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}-${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}`;
}

async function buildServer(options: ServeOptions, authorization: () => boolean) {
  const { Server } = await import("@modelcontextprotocol/sdk/server/index.js");
  const { CallToolRequestSchema, ListToolsRequestSchema } = await import("@modelcontextprotocol/sdk/types.js");
  const server = new Server({ name: "session-buddy-minimal", version: "0.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [
      { name: "track_session_start", description: "Track session start", inputSchema: { type: "object" } },
      { name: "track_session_end", description: "Track session end", inputSchema: { type: "object" } },
      { name: "health_check", description: "Health", inputSchema: { type: "object" } },
    ],
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const { name } = request.params;
    const args = { ...((request.params.arguments ?? {}) as Record<string, unknown>) };
    const token = typeof args.token === "string" ? args.token : undefined;
    delete args.token;
    if (options.delayMs > 0) await new Promise((r) => setTimeout(r, options.delayMs));
    let answer: Record<string, unknown> | string;
    let tokenComponent: string | undefined;
    if (name === "health_check") {
      answer = "Session-Buddy is healthy";
    } else if (options.secret !== undefined && token === undefined) {
      answer = "Authentication failed: token required";
    } else {
      let authError: string | undefined;
      if (options.secret !== undefined && token !== undefined) {
        try {
          tokenComponent = (await verifyToken(token, options.secret)).component;
        } catch (error) {
          authError = `Authentication failed: ${(error as Error).message}`;
        }
      }
      if (authError !== undefined) {
        answer = authError;
      } else if (name === "track_session_start") {
        try {
          const event = validateStartEvent({ ...args, ...(token ? { token } : {}) });
          answer = {
            session_id: `${event.component_name}-${stamp(new Date())}-${randomBytes(3).toString("hex")}`,
            status: "tracked",
          };
        } catch (error) {
          answer = { session_id: null, status: "error", error: (error as Error).message };
        }
      } else if (name === "track_session_end") {
        try {
          const event = validateEndEvent({ ...args, ...(token ? { token } : {}) });
          // Like the real one: the session id is echoed, not looked up.
          answer = { session_id: event.session_id, status: "ended" };
        } catch (error) {
          answer = { session_id: null, status: "error", error: (error as Error).message };
        }
      } else {
        answer = `Unknown tool: ${name}`;
      }
    }
    if (options.record !== undefined && name !== "health_check") {
      const entry: RecordedCall = {
        tool: name,
        args,
        tokenPresent: token !== undefined,
        ...(tokenComponent !== undefined ? { tokenComponent } : {}),
        meta: request.params._meta as Record<string, unknown> | undefined,
        authorization: authorization(),
        answer,
        at: new Date().toISOString(),
      };
      appendFileSync(options.record, `${JSON.stringify(entry)}\n`);
    }
    if (typeof answer === "string") return { content: [{ type: "text" as const, text: answer }] };
    return { content: [{ type: "text" as const, text: JSON.stringify(answer) }], structuredContent: answer };
  });
  return server;
}

async function serveHttp(port: number, options: ServeOptions): Promise<HttpServer> {
  const { StreamableHTTPServerTransport } = await import("@modelcontextprotocol/sdk/server/streamableHttp.js");
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
    const hasAuth = typeof req.headers.authorization === "string";
    const server = await buildServer(options, () => hasAuth);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => {
      // A client that gave up (its timeout aborted the request) is recorded: tests check timeouts really abort.
      if (!res.writableFinished && options.record !== undefined) {
        const entry: RecordedCall = {
          tool: "(disconnected)",
          args: {},
          tokenPresent: false,
          meta: undefined,
          authorization: hasAuth,
          answer: "",
          at: new Date().toISOString(),
        };
        appendFileSync(options.record, `${JSON.stringify(entry)}\n`);
      }
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((resolve) => http.listen(port, "127.0.0.1", resolve));
  return http;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      http: { type: "boolean" },
      stdio: { type: "boolean" },
      port: { type: "string", default: "0" },
      record: { type: "string" },
      secret: { type: "string" },
      "delay-ms": { type: "string", default: "0" },
    },
  });
  const options: ServeOptions = {
    record: values.record,
    secret: values.secret ?? process.env.SESSION_BUDDY_MINIMAL_SECRET,
    delayMs: Number(values["delay-ms"]),
  };
  if (values.stdio) {
    const { StdioServerTransport } = await import("@modelcontextprotocol/sdk/server/stdio.js");
    const server = await buildServer(options, () => false);
    await server.connect(new StdioServerTransport());
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
}

/** `SESSION_BUDDY_COMMAND` that spawns this server over stdio (a JSON array: paths with spaces survive). */
export function minimalStdioCommand(options: MinimalOptions): string {
  const args = [NODE, HERE, "--stdio", "--record", options.record];
  if (options.secret !== undefined) args.push(`--secret=${options.secret}`); // "=": a base64url secret may begin with "-"
  return JSON.stringify(args);
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
  const args = [HERE, "--http", "--port", String(port), "--record", options.record];
  if (options.secret !== undefined) args.push(`--secret=${options.secret}`); // "=": a base64url secret may begin with "-"
  if (options.delayMs !== undefined) args.push("--delay-ms", String(options.delayMs));
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
export async function startMinimalHttp(options: MinimalOptions): Promise<MinimalHttpServer> {
  let { child, url } = await spawnHttp(0, options);
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
