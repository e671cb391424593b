/**
 * Starting the no-op peer (noop-server.ts) and talking to it, or to the
 * tracker, with the MCP SDK's client exactly as the exporter does.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

export const NOOP_TOOL = "noop";
const SERVER_PATH = fileURLToPath(new URL("./noop-server.ts", import.meta.url));

export interface NoopHttpPeer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** The no-op peer over Streamable HTTP, in its own process (as the tracker is). */
export async function startNoopHttp(): Promise<NoopHttpPeer> {
  const child: ChildProcess = spawn(process.execPath, [SERVER_PATH, "--http"], { stdio: ["ignore", "ignore", "pipe"] });
  const url = await new Promise<string>((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => reject(new Error(`the no-op peer did not start: ${log}`)), 30_000);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      log += chunk;
      const m = /listening on (\S+)/.exec(log);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the no-op peer exited (${code}): ${log}`));
    });
  });
  return {
    url,
    pid: child.pid ?? 0,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export const BENCH_CLIENT = { name: "otel-shell-sessions-bench", version: "0.0.0" };

/** An MCP client over Streamable HTTP, with a Bearer token when given. */
export async function httpClient(url: string, token?: string): Promise<Client> {
  const client = new Client(BENCH_CLIENT);
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: token ? { headers: { authorization: `Bearer ${token}` } } : {},
    }),
  );
  return client;
}

/** An MCP client over stdio, spawning `command args`. */
export async function stdioClient(command: string, args: string[], env?: Record<string, string>): Promise<Client> {
  const client = new Client(BENCH_CLIENT);
  await client.connect(new StdioClientTransport({ command, args, stderr: "ignore", ...(env ? { env } : {}) }));
  return client;
}

/** Spawns the no-op peer over stdio and connects to it. */
export function noopStdioClient(): Promise<Client> {
  return stdioClient(process.execPath, [SERVER_PATH, "--stdio"]);
}
