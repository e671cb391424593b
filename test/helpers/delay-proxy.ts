/**
 * A slow tracker: a small HTTP proxy in front of the real one that holds
 * every response back (the bench's tracker answering after 5 s; slow
 * heartbeats and sends in tests). Hand-rolled (a few lines of node:http)
 * because all it must do is forward one request and wait.
 */
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";

export interface DelayProxy {
  readonly url: string;
  /** How long each answer is held back; may be changed while the proxy runs (answers held already keep theirs). */
  delayMs: number;
  /** The most requests it held at once so far (how many calls a client had in flight together). */
  readonly peakInFlight: number;
  /** Requests received so far, and answers passed on so far (any method, the era probe included). */
  readonly received: number;
  readonly answered: number;
  /** Each `tools/call` answered so far: the tool's name and when the request came and its answer left (ms). */
  readonly toolCalls: readonly ToolCall[];
  close(): Promise<void>;
}

export interface ToolCall {
  tool: string;
  start: number;
  end: number;
}

/** The tool a JSON-RPC `tools/call` request body names, if it is one. */
function toolOf(body: Buffer): string | undefined {
  try {
    const message = JSON.parse(body.toString("utf8")) as { method?: unknown; params?: { name?: unknown } };
    return message.method === "tools/call" && typeof message.params?.name === "string"
      ? message.params.name
      : undefined;
  } catch {
    return undefined;
  }
}

export async function startDelayProxy(target: string, delayMs: number): Promise<DelayProxy> {
  const upstream = new URL(target);
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;
  let peakInFlight = 0;
  let received = 0;
  let answered = 0;
  const toolCalls: ToolCall[] = [];
  const server = createServer((req, res) => {
    const start = performance.now();
    const body: Buffer[] = [];
    req.on("data", (chunk: Buffer) => body.push(chunk));
    received++;
    inFlight++;
    peakInFlight = Math.max(peakInFlight, inFlight);
    res.on("close", () => {
      inFlight--;
      if (res.writableFinished) answered++;
      const tool = toolOf(Buffer.concat(body));
      if (tool !== undefined) toolCalls.push({ tool, start, end: performance.now() });
    });
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        // The tracker checks Host against its own names (DNS rebinding protection).
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on("data", (chunk: Buffer) => chunks.push(chunk));
        answer.on("end", () => {
          const timer = setTimeout(() => {
            timers.delete(timer);
            res.writeHead(answer.statusCode ?? 502, answer.headers).end(Buffer.concat(chunks));
          }, proxy.delayMs);
          timers.add(timer);
        });
      },
    );
    forward.on("error", () => res.writeHead(502).end());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const proxy: DelayProxy = {
    url: `http://127.0.0.1:${port}${upstream.pathname}`,
    delayMs,
    get peakInFlight() {
      return peakInFlight;
    },
    get received() {
      return received;
    },
    get answered() {
      return answered;
    },
    toolCalls,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return proxy;
}
