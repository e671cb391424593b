/**
 * A minimal OTLP/HTTP receiver for tests: accepts `http/json` trace exports
 * on 127.0.0.1 (free port) and decodes them into spans with their resource
 * and scope. Also answers `GET /ping`, a request for instrumented code to make.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

type AnyValue = {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
};
type KeyValue = { key: string; value: AnyValue };

export interface ReceivedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  kind: number;
  attributes: Record<string, unknown>;
  status: { code?: number };
  scope: string;
  resource: Record<string, unknown>;
}

function decodeValue(value: AnyValue): unknown {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(decodeValue);
  return undefined;
}

function decodeAttributes(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, decodeValue(kv.value)]));
}

interface TraceRequest {
  resourceSpans?: Array<{
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: Array<{
      scope?: { name?: string };
      spans?: Array<{
        name: string;
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        kind: number;
        attributes?: KeyValue[];
        status?: { code?: number };
      }>;
    }>;
  }>;
}

export function decodeTraceRequest(body: TraceRequest): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = decodeAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const span of ss.spans ?? []) {
        spans.push({
          name: span.name,
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId ?? "",
          kind: span.kind,
          attributes: decodeAttributes(span.attributes),
          status: span.status ?? {},
          scope: ss.scope?.name ?? "",
          resource,
        });
      }
    }
  }
  return spans;
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly #server: Server;
  readonly #waiters = new Set<() => void>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<OtlpReceiver> {
    let receiver: OtlpReceiver | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.method === "POST" && req.url === "/v1/traces") {
          try {
            receiver?.receive(decodeTraceRequest(JSON.parse(Buffer.concat(chunks).toString("utf8"))));
          } catch {
            res.writeHead(400).end();
            return;
          }
          res.writeHead(200, { "content-type": "application/json" }).end("{}");
        } else if (req.method === "POST") {
          res.writeHead(200, { "content-type": "application/json" }).end("{}");
        } else {
          res.writeHead(200, { "content-type": "text/plain" }).end("pong");
        }
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    receiver = new OtlpReceiver(server);
    return receiver;
  }

  receive(spans: ReceivedSpan[]): void {
    this.spans.push(...spans);
    for (const wake of this.#waiters) wake();
  }

  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Environment that sends a child's traces here as OTLP/HTTP JSON. */
  env(): NodeJS.ProcessEnv {
    return {
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${this.url}/v1/traces`,
      OTEL_BSP_SCHEDULE_DELAY: "200",
    };
  }

  /** Resolves with the received spans once `ready(spans)` holds; rejects after the deadline. */
  waitFor(ready: (spans: ReceivedSpan[]) => boolean, timeoutMs = 30_000): Promise<ReceivedSpan[]> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (ready(this.spans)) {
          done();
          resolve(this.spans);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`spans not received within ${timeoutMs} ms; got ${JSON.stringify(this.spans, null, 1)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
