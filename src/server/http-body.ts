/**
 * Reading a request body with a size limit and a deadline. Hand-rolled (a
 * few lines) because the refusal must happen here, before a transport and
 * server are built for the request, must stop storing bytes as soon as the
 * limit is passed, and must give up on a body that trickles in too slowly.
 * A client that goes away mid-body is an outcome, not an error: it is not
 * logged.
 */
import type { IncomingMessage } from "node:http";

export type BodyResult =
  | { kind: "ok"; text: string }
  | { kind: "too_large" }
  | { kind: "timeout" }
  | { kind: "aborted" };

export function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      chunks.length = 0;
      req.off("data", onData);
      resolve(result);
    };
    const timer = setTimeout(() => finish({ kind: "timeout" }), timeoutMs);
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        finish({ kind: "too_large" });
        // Discard the rest; the answer closes the connection.
        req.resume();
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => finish({ kind: "ok", text: Buffer.concat(chunks).toString("utf8") }));
    req.once("error", () => finish({ kind: "aborted" }));
    req.once("close", () => finish({ kind: "aborted" }));
  });
}
