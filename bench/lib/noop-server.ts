/**
 * The peer of every latency and throughput figure: an MCP server with one
 * tool that does nothing and answers `{}`, served by the same SDK and the
 * same transport settings as the tracker. What it costs is the platform's
 * floor: whatever the tracker takes beyond it is ours.
 *
 *   node bench/lib/noop-server.ts --http   # prints "listening on URL" to stderr
 *   node bench/lib/noop-server.ts --stdio
 *
 * Over HTTP it is stateless like the tracker: a server and a transport per
 * request (the SDK's stateless pattern), JSON responses, the body read and
 * parsed before the transport sees it.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { NOOP_TOOL } from "./peer.ts";

function noopServer(): McpServer {
  const server = new McpServer({ name: "noop-peer", version: "0.0.0" });
  server.registerTool(NOOP_TOOL, { description: "Does nothing; answers {}." }, async () => ({
    content: [{ type: "text", text: "{}" }],
    structuredContent: {},
  }));
  return server;
}

async function serveHttp(): Promise<void> {
  const http = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      void (async () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          res.writeHead(400).end();
          return;
        }
        const server = noopServer();
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: undefined,
          enableJsonResponse: true,
        });
        res.once("close", () => {
          void transport.close();
          void server.close();
        });
        await server.connect(transport);
        await transport.handleRequest(req, res, body);
      })().catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  process.stderr.write(`noop peer listening on http://127.0.0.1:${port}/mcp\n`);
  process.once("SIGTERM", () => http.close(() => process.exit(0)));
}

async function serveStdio(): Promise<void> {
  const server = noopServer();
  process.stdin.once("end", () => void server.close().then(() => process.exit(0)));
  await server.connect(new StdioServerTransport());
}

if (process.argv.includes("--stdio")) await serveStdio();
else await serveHttp();
