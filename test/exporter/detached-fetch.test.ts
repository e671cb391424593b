/**
 * The exporter's fetch (src/exporter/detached-fetch.ts): what the MCP
 * transports need of fetch, over a real HTTP server on 127.0.0.1, and the one
 * thing Node's fetch cannot do: a request in flight does not keep the
 * process alive.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { detachedFetch } from "../../src/exporter/detached-fetch.ts";
import { freePort } from "../helpers/ports.ts";

const SOURCE = join(fileURLToPath(import.meta.url), "..", "..", "..", "src", "exporter", "detached-fetch.ts");
/** A self-signed certificate for 127.0.0.1, made for these tests only. */
const TLS = join(fileURLToPath(import.meta.url), "..", "..", "fixtures", "tls");

async function serve(
  t: { after(fn: () => Promise<void> | void): void },
  handle: (req: IncomingMessage, res: ServerResponse) => void,
) {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => resolve(body));
  });
}

test("a POST with headers and a body; status, repeated headers and the body come back", async (t) => {
  const url = await serve(t, async (req, res) => {
    const body = await readBody(req);
    res.setHeader("set-cookie", ["a=1", "b=2"]);
    res.setHeader("content-type", "application/json");
    res.writeHead(202, "Accepted");
    res.end(JSON.stringify({ method: req.method, auth: req.headers.authorization, body }));
  });
  const fetch = detachedFetch();
  t.after(() => fetch.destroy());
  const response = await fetch(`${url}/mcp`, {
    method: "POST",
    headers: new Headers({ authorization: "Bearer x", "content-type": "application/json" }),
    body: '{"jsonrpc":"2.0"}',
  });
  assert.equal(response.status, 202);
  assert.equal(response.statusText, "Accepted");
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.deepEqual(response.headers.getSetCookie(), ["a=1", "b=2"]);
  assert.deepEqual(await response.json(), { method: "POST", auth: "Bearer x", body: '{"jsonrpc":"2.0"}' });
});

test("a streamed body (server-sent events) is readable chunk by chunk before the response ends", async (t) => {
  let finish = () => {};
  const url = await serve(t, (_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write("data: one\n\n");
    finish = () => res.end("data: two\n\n");
  });
  const fetch = detachedFetch();
  t.after(() => fetch.destroy());
  const response = await fetch(url);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value), "data: one\n\n");
  finish();
  let rest = "";
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    rest += new TextDecoder().decode(chunk.value);
  }
  assert.equal(rest, "data: two\n\n");
});

test("an aborted request rejects with the signal's reason; a refused connection as Node's fetch does", async (t) => {
  const url = await serve(t, () => {
    // Never answers.
  });
  const fetch = detachedFetch();
  t.after(() => fetch.destroy());
  const controller = new AbortController();
  const pending = fetch(url, { signal: controller.signal });
  const reason = new Error("cut off by the caller");
  controller.abort(reason);
  await assert.rejects(pending, (error) => error === reason);

  const closed = await freePort();
  await assert.rejects(fetch(`http://127.0.0.1:${closed}/mcp`), (error: unknown) => {
    assert.ok(error instanceof TypeError && error.message === "fetch failed", String(error));
    assert.equal((error.cause as NodeJS.ErrnoException).code, "ECONNREFUSED");
    return true;
  });
});

test("an answer fetch cannot represent (status 999) is a failed request, not an exception in the program", async (t) => {
  const url = await serve(t, (_req, res) => {
    res.writeHead(999);
    res.end("odd");
  });
  const fetch = detachedFetch();
  t.after(() => fetch.destroy());
  await assert.rejects(fetch(url), (error: unknown) => error instanceof TypeError && error.message === "fetch failed");
});

/** Runs a program that sends one request to `url` with `how`, and resolves with how it ended. */
function runRequester(how: "detached" | "global", url: string): Promise<{ code: number | null; stdout: string }> {
  const program = `
    import { detachedFetch } from ${JSON.stringify(SOURCE)};
    const fetch = ${how === "detached" ? "detachedFetch()" : "globalThis.fetch"};
    fetch(${JSON.stringify(url)}).then(() => console.log("answered"), () => console.log("failed"));
    process.on("exit", () => console.log("exited"));
  `;
  return new Promise((resolve) => {
    execFile(process.execPath, ["--input-type=module", "-e", program], { timeout: 1_500 }, (error, stdout) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : null) : 0, stdout });
    });
  });
}

test("a request in flight does not keep the process alive (Node's own fetch does)", async (t) => {
  const url = await serve(t, () => {
    // Never answers: the request stays in flight.
  });
  const detached = await runRequester("detached", url);
  assert.deepEqual(detached, { code: 0, stdout: "exited\n" }, "exits at once, its request unanswered");
  // The control: the same program on the global fetch is still waiting when it is killed after 1.5 s.
  const global = await runRequester("global", url);
  assert.notEqual(global.code, 0, `the global fetch kept the process alive: ${JSON.stringify(global)}`);
});

test("https: a tracker behind TLS, its certificate trusted the usual way (NODE_EXTRA_CA_CERTS)", async (t) => {
  const server = createHttpsServer(
    { key: readFileSync(join(TLS, "test-only-key.pem")), cert: readFileSync(join(TLS, "test-only-cert.pem")) },
    (req, res) => res.end(`over tls: ${req.method}`),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  // Held open by an interval: the fetch alone would not keep the program alive until the answer.
  const program = `
    import { detachedFetch } from ${JSON.stringify(SOURCE)};
    const hold = setInterval(() => {}, 1000);
    const fetch = detachedFetch();
    const response = await fetch(${JSON.stringify(url)}, { method: "POST", body: "{}" });
    console.log(response.status, await response.text());
    fetch.destroy();
    clearInterval(hold);
  `;
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ["--input-type=module", "-e", program],
      { timeout: 10_000, env: { ...process.env, NODE_EXTRA_CA_CERTS: join(TLS, "test-only-cert.pem") } },
      (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)),
    );
  });
  assert.equal(stdout, "200 over tls: POST\n");
});
