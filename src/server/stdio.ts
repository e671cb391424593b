/**
 * MCP over stdio, for clients that spawn the tracker. Stdout carries only
 * protocol messages; logs go to stderr.
 */

import type { Readable, Writable } from "node:stream";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { createMcpServer, type McpServerContext } from "./mcp.ts";

export interface StdioTrackerServer {
  /** Resolves when the client closes the connection (stdin ends) or close() is called. */
  closed: Promise<void>;
  close(): Promise<void>;
}

export async function serveStdio(
  ctx: Omit<McpServerContext, "transport">,
  options: { stdin?: Readable; stdout?: Writable; maxMessageBytes?: number } = {},
): Promise<StdioTrackerServer> {
  const server = createMcpServer({ ...ctx, transport: "pipe" });
  const transport = new StdioServerTransport(options.stdin, options.stdout, {
    ...(options.maxMessageBytes !== undefined ? { maxBufferSize: options.maxMessageBytes } : {}),
  });
  const closed = new Promise<void>((resolve) => {
    server.onclose = () => resolve();
  });
  const stdin = options.stdin ?? process.stdin;
  // The SDK's transport does not notice the other end going away; without this a parentless server would linger.
  stdin.once("end", () => void server.close());
  await server.connect(transport);
  return {
    closed,
    async close() {
      await server.close();
      await closed;
    },
  };
}
