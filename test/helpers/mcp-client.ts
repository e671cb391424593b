/**
 * Real MCP clients for the tracker, over Streamable HTTP and over stdio
 * (spawning `dist/cli/main.js serve --stdio`), plus Session-Buddy 1.0
 * payloads to send them.
 *
 * Two clients, one per protocol era: by default the v1 SDK's `Client`
 * (`@modelcontextprotocol/sdk` 1.32), which speaks the 2025-11-25 handshake;
 * with `era: "modern"` the v2 SDK's `Client` (`@modelcontextprotocol/client`)
 * pinned to the stateless revision 2026-07-28, which fails to connect unless
 * the server offers it through `server/discover`.
 */
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernHttpTransport,
} from "@modelcontextprotocol/client";
import { StdioClientTransport as ModernStdioTransport } from "@modelcontextprotocol/client/stdio";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { mintToken } from "../../src/auth/jwt.ts";
import { CLI_PATH, childEnv } from "./tracker.ts";

/** The stateless revision; a modern client is pinned to it. */
export const MODERN_REVISION = "2026-07-28";

export type ClientEra = "legacy" | "modern";

type ListedSchema = { [key: string]: unknown; properties?: Record<string, unknown>; required?: string[] };

/** What both SDK clients offer that the tests use. */
interface AnyClient {
  callTool(params: {
    name: string;
    arguments?: Record<string, unknown>;
    _meta?: Record<string, unknown>;
  }): Promise<unknown>;
  listTools(): Promise<{
    tools: Array<{ name: string; inputSchema: ListedSchema; outputSchema?: ListedSchema | undefined }>;
  }>;
  close(): Promise<void>;
}

export interface ConnectedClient {
  client: AnyClient;
  /** The era the connection speaks. */
  era: ClientEra;
  /** The revision the connection settled on (the handshake's, or 2026-07-28). */
  protocolVersion: string | undefined;
  /** Calls a tool and returns its structured result (also checking the JSON text item agrees). */
  call(name: string, args?: Record<string, unknown>, meta?: Record<string, unknown>): Promise<ToolCall>;
  close(): Promise<void>;
}

export interface ToolCall {
  raw: CallToolResult;
  result: Record<string, unknown>;
}

function readResult(raw: CallToolResult): Record<string, unknown> {
  const structured = raw.structuredContent as Record<string, unknown> | undefined;
  const text = raw.content.find((c) => c.type === "text");
  const fromText = text && text.type === "text" ? (JSON.parse(text.text) as Record<string, unknown>) : undefined;
  if (!structured || !fromText) throw new Error("a tool result must carry structuredContent and a JSON text item");
  return structured;
}

function wrap(client: AnyClient, era: ClientEra, protocolVersion: string | undefined): ConnectedClient {
  return {
    client,
    era,
    protocolVersion,
    async call(name, args = {}, meta) {
      const raw = (await client.callTool({
        name,
        arguments: args,
        ...(meta ? { _meta: meta } : {}),
      })) as CallToolResult;
      return { raw, result: readResult(raw) };
    },
    close: () => client.close(),
  };
}

const CLIENT_INFO = { name: "tracker-tests", version: "0.0.0" };

function modernClient(): ModernClient {
  return new ModernClient(CLIENT_INFO, { versionNegotiation: { mode: { pin: MODERN_REVISION } } });
}

export async function connectHttp(
  url: string,
  options: { token?: string; era?: ClientEra } = {},
): Promise<ConnectedClient> {
  const requestInit = options.token ? { headers: { authorization: `Bearer ${options.token}` } } : {};
  if (options.era === "modern") {
    const client = modernClient();
    await client.connect(new ModernHttpTransport(new URL(url), { requestInit }));
    return wrap(client, "modern", client.getNegotiatedProtocolVersion());
  }
  const client = new Client(CLIENT_INFO);
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit });
  await client.connect(transport);
  return wrap(client, "legacy", transport.protocolVersion);
}

export interface StdioOptions {
  store: string;
  stateDir: string;
  secret?: string;
  /** The token the server gets as SESSION_BUDDY_TOKEN. */
  environmentToken?: string;
  lease?: number;
  env?: Record<string, string | undefined>;
  args?: string[];
  era?: ClientEra;
}

export interface StdioClient extends ConnectedClient {
  /** The server's stderr so far. */
  log(): string;
  pid: number | null;
}

export async function connectStdio(options: StdioOptions): Promise<StdioClient> {
  const env = childEnv({
    SHELL_SESSIONS_STATE_DIR: options.stateDir,
    ...(options.secret !== undefined ? { SESSION_BUDDY_SECRET: options.secret } : {}),
    ...(options.environmentToken !== undefined ? { SESSION_BUDDY_TOKEN: options.environmentToken } : {}),
    ...options.env,
  });
  const args = [CLI_PATH, "serve", "--stdio", "--store", options.store];
  if (options.lease !== undefined) args.push("--lease", String(options.lease));
  args.push(...(options.args ?? []));
  const parameters = {
    command: process.execPath,
    args,
    env: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
    stderr: "pipe" as const,
  };
  let log = "";
  const collect = (stderr: Readable | null) => {
    stderr?.setEncoding("utf8");
    stderr?.on("data", (chunk: string) => {
      log += chunk;
    });
  };
  if (options.era === "modern") {
    const transport = new ModernStdioTransport(parameters);
    collect(transport.stderr as Readable | null);
    const client = modernClient();
    await client.connect(transport);
    return { ...wrap(client, "modern", client.getNegotiatedProtocolVersion()), log: () => log, pid: transport.pid };
  }
  const transport = new StdioClientTransport(parameters);
  collect(transport.stderr as Readable | null);
  // The v1 client tells its transport the version the handshake settled; the stdio transport has no use for it.
  let negotiated: string | undefined;
  Object.assign(transport, { setProtocolVersion: (version: string) => (negotiated = version) });
  const client = new Client(CLIENT_INFO);
  await client.connect(transport);
  return {
    ...wrap(client, "legacy", negotiated),
    log: () => log,
    pid: transport.pid,
  };
}

/** A token for `component` signed with `secret`. */
export function tokenFor(secret: string, component: string, scopes?: string[]): Promise<string> {
  return mintToken({ secret, component, ...(scopes ? { scopes } : {}) });
}

/** A track_session_start payload the real Session-Buddy 1.0 accepts. */
export function startPayload(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_version: "1.0",
    event_id: randomUUID(),
    event_type: "session_start",
    component_name: "mahavishnu",
    shell_type: "MahavishnuShell",
    timestamp: new Date().toISOString(),
    pid: 4242,
    user: { username: "operator", home: "/home/operator" },
    hostname: "admin-01",
    environment: { python_version: "n/a (node v24)", platform: "linux", cwd: "/srv/mahavishnu" },
    metadata: { component_version: "1.2.3", runtime: "node" },
    ...overrides,
  };
}

export function endPayload(sessionId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    session_id: sessionId,
    timestamp: new Date().toISOString(),
    event_type: "session_end",
    metadata: { exit_reason: "exit_command" },
    ...overrides,
  };
}

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

/** A plain HTTP POST to the MCP endpoint, for what an MCP client would never send. */
export async function rawPost(url: string, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** A JSON-RPC tools/call request, as an MCP client would POST it. */
export function toolsCall(name: string, args: Record<string, unknown>, id = 1): Record<string, unknown> {
  return { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } };
}
