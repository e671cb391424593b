/**
 * MCP over stdio, for clients that spawn the tracker. Stdout carries only
 * protocol messages; logs go to stderr.
 *
 * The SDK's `serveStdio` owns the era: the connection's opening message
 * selects it (`server/discover` or any request claiming 2026-07-28 in `_meta`
 * for the stateless era, `initialize` for the handshake era), and one server
 * from the factory serves the connection in that era.
 */

import type { Readable, Writable } from "node:stream";
import { StdioServerTransport, serveStdio as serveStdioEntry } from "@modelcontextprotocol/server/stdio";
import type { Logger } from "./log.ts";
import { createMcpServer, type McpServerContext, mcpEntryErrorLogger } from "./mcp.ts";

export interface StdioTrackerServer {
  /** Resolves when the client closes the connection (stdin ends) or close() is called. */
  closed: Promise<void>;
  close(): Promise<void>;
}

export async function serveStdio(
  ctx: Omit<McpServerContext, "transport"> & { log: Logger },
  options: { stdin?: Readable; stdout?: Writable; maxMessageBytes?: number } = {},
): Promise<StdioTrackerServer> {
  const { log, ...serverContext } = ctx;
  const wire = new StdioServerTransport(options.stdin, options.stdout, {
    ...(options.maxMessageBytes !== undefined ? { maxBufferSize: options.maxMessageBytes } : {}),
  });
  const handle = serveStdioEntry(() => createMcpServer({ ...serverContext, transport: "pipe" }), {
    transport: wire,
    onerror: mcpEntryErrorLogger(log, "stdio"),
  });
  // The entry installs its close handler synchronously; chain ours after it to learn when the client went away.
  const closed = new Promise<void>((resolve) => {
    const entryOnClose = wire.onclose;
    wire.onclose = () => {
      entryOnClose?.();
      resolve();
    };
  });
  return {
    closed,
    async close() {
      await handle.close();
      await closed;
    },
  };
}
