/**
 * A `fetch` for the MCP client whose sockets never keep the process alive,
 * not even with a request in flight.
 *
 * Why by hand: delivery keeps its connection to the tracker warm for the
 * life of the program, and a call may be in flight when the program is
 * otherwise done; Node's own fetch (undici) holds the event loop open while
 * a request is pending, and neither it nor any fetch library lets a caller
 * unreference its sockets. Whether a program may exit is then decided by
 * the exit grace alone (delivery.ts), and what is still unacknowledged when
 * it exits is written to the spool by the `exit` handler.
 *
 * Covers what the MCP transports use: a method, headers, a string or byte
 * body, an abort signal, and a streamed response body (SSE). Redirects are
 * not followed (a tracker has no reason to redirect; the SDK treats a 3xx as
 * a failed request).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Readable } from "node:stream";

export type DetachedFetch = typeof fetch & { destroy(): void };

function headersOf(init: RequestInit | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  new Headers(init?.headers).forEach((value, key) => {
    out[key] = value;
  });
  return out;
}

function responseHeaders(res: IncomingMessage): Headers {
  const headers = new Headers();
  for (let i = 0; i < res.rawHeaders.length; i += 2)
    headers.append(res.rawHeaders[i] ?? "", res.rawHeaders[i + 1] ?? "");
  return headers;
}

async function bodyOf(init: RequestInit | undefined): Promise<Buffer | undefined> {
  const body = init?.body;
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return Buffer.from(body);
  return Buffer.from(await new Response(body).arrayBuffer());
}

/** A fetch over keep-alive agents whose sockets are unreferenced (see above). `destroy()` closes them. */
export function detachedFetch(): DetachedFetch {
  const http = { agent: new HttpAgent({ keepAlive: true }), request: httpRequest };
  // TLS is loaded only for an https tracker: most trackers are local, and loading it holds the event loop.
  let https: Promise<typeof http> | undefined;
  const transport = (protocol: string) => {
    if (protocol === "http:") return http;
    https ??= import("node:https").then((m) => ({ agent: new m.Agent({ keepAlive: true }), request: m.request }));
    return https;
  };
  const run = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`fetch failed: unsupported protocol ${url.protocol}`);
    }
    const signal = init?.signal ?? undefined;
    const body = await bodyOf(init);
    const { agent, request } = await transport(url.protocol);
    signal?.throwIfAborted();
    const headers = headersOf(init);
    if (body !== undefined) headers["content-length"] = String(body.length);
    return new Promise<Response>((resolve, reject) => {
      const req = request(url, { method: init?.method ?? "GET", headers, agent });
      const onAbort = () => req.destroy(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      // Agent.reuseSocket references a pooled socket before each request; this comes after it.
      req.on("socket", (socket) => socket.unref());
      req.on("error", (error) => {
        signal?.removeEventListener("abort", onAbort);
        // As Node's fetch reports it: an abort as the signal's reason, anything else as "fetch failed" with its cause.
        reject(signal?.aborted ? signal.reason : new TypeError("fetch failed", { cause: error }));
      });
      req.on("response", (res) => {
        res.on("close", () => signal?.removeEventListener("abort", onAbort));
        const empty = res.statusCode === 204 || res.statusCode === 304 || init?.method === "HEAD";
        try {
          resolve(
            new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
              status: res.statusCode ?? 500,
              statusText: res.statusMessage ?? "",
              headers: responseHeaders(res),
            }),
          );
        } catch (error) {
          // A status Response cannot carry (above 599) or a malformed header: a failed request, never a throw
          // inside the host program's event loop.
          res.destroy();
          reject(new TypeError("fetch failed", { cause: error }));
          return;
        }
        if (empty) res.resume();
      });
      req.end(body);
    });
  };
  return Object.assign(run as typeof fetch, {
    destroy() {
      http.agent.destroy();
      void https?.then((t) => t.agent.destroy());
    },
  });
}
