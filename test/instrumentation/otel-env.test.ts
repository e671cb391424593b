/**
 * The standard OTEL_* variables behave here exactly as in a plain NodeSDK
 * app: each row runs test/fixtures/env-probe.mjs twice under the same
 * environment, once with a plain NodeSDK and once with this package's
 * telemetry, and compares where spans went (an OTLP receiver, a Zipkin
 * receiver), what their resource said, and whether a bad value was warned
 * about. Each row also states what both should do, so a fault shared by both
 * sides is caught too.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { FIXTURES } from "./shell-testbed.ts";

interface Outcome {
  /** Spans arrived over OTLP. */
  otlp: boolean;
  /** Spans arrived at the Zipkin endpoint. */
  zipkin: boolean;
  /** The output named the bad value (at OTEL_LOG_LEVEL=warn). */
  warned: boolean;
  /** From the first span's resource (OTLP) or local endpoint (Zipkin). */
  serviceName?: string | undefined;
  team?: string | undefined;
  hostName?: boolean | undefined;
}

/** A Zipkin v2 receiver: POST /api/v2/spans with a JSON array of spans. */
async function startZipkinReceiver() {
  const spans: { localEndpoint?: { serviceName?: string } }[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => {
      if (req.url === "/api/v2/spans") spans.push(...(JSON.parse(body) as typeof spans));
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v2/spans`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function run(probe: "plain" | "ours", env: Record<string, string>): Promise<Outcome> {
  const otlp = await startOtlpReceiver();
  const zipkin = await startZipkinReceiver();
  try {
    const childEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
    Object.assign(childEnv, otlp.env(), {
      PROBE: probe,
      OTEL_LOG_LEVEL: "warn",
      OTEL_EXPORTER_ZIPKIN_ENDPOINT: zipkin.url,
      OTEL_BSP_SCHEDULE_DELAY: "100",
      SHELL_SESSIONS_DELIVERY: "off",
      ...env,
    });
    const output = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        [join(FIXTURES, "env-probe.mjs")],
        { env: childEnv, cwd: FIXTURES, timeout: 30_000 },
        (error, stdout, stderr) =>
          error ? reject(new Error(`${probe}: ${error.message}\n${stderr}`)) : resolve(stdout + stderr),
      );
    });
    const [span] = otlp.spans;
    const zipkinSpan = zipkin.spans[0];
    return {
      otlp: otlp.spans.length > 0,
      zipkin: zipkin.spans.length > 0,
      warned: /bogus/.test(output),
      serviceName: span ? String(span.resource["service.name"]) : zipkinSpan?.localEndpoint?.serviceName,
      team: span ? (span.resource.team as string | undefined) : undefined,
      hostName: span ? span.resource["host.name"] !== undefined : undefined,
    };
  } finally {
    await otlp.close();
    await zipkin.close();
  }
}

const ROWS: { name: string; env: Record<string, string>; expect: Partial<Outcome> }[] = [
  { name: "the default: otlp", env: {}, expect: { otlp: true, zipkin: false, hostName: true } },
  { name: "zipkin", env: { OTEL_TRACES_EXPORTER: "zipkin" }, expect: { otlp: false, zipkin: true } },
  { name: "otlp and zipkin", env: { OTEL_TRACES_EXPORTER: "otlp,zipkin" }, expect: { otlp: true, zipkin: true } },
  {
    name: "an unknown exporter",
    env: { OTEL_TRACES_EXPORTER: "bogus" },
    expect: { otlp: false, zipkin: false, warned: true },
  },
  // The SDK's own rule: `none` first means none; `none` after another name means the default, otlp.
  { name: "none first", env: { OTEL_TRACES_EXPORTER: "none,zipkin" }, expect: { otlp: false, zipkin: false } },
  { name: "none among others", env: { OTEL_TRACES_EXPORTER: "zipkin,none" }, expect: { otlp: true, zipkin: false } },
  { name: "none", env: { OTEL_TRACES_EXPORTER: "none" }, expect: { otlp: false, zipkin: false } },
  {
    name: "resource attributes, percent-encoded",
    env: { OTEL_RESOURCE_ATTRIBUTES: "service.name=audit%20api,team=ops" },
    expect: { otlp: true, serviceName: "audit api", team: "ops" },
  },
  {
    name: "OTEL_SERVICE_NAME over OTEL_RESOURCE_ATTRIBUTES",
    env: { OTEL_SERVICE_NAME: "named", OTEL_RESOURCE_ATTRIBUTES: "service.name=other" },
    expect: { otlp: true, serviceName: "named" },
  },
  { name: "SDK disabled", env: { OTEL_SDK_DISABLED: "true" }, expect: { otlp: false, zipkin: false } },
  {
    name: "resource detectors none",
    env: { OTEL_NODE_RESOURCE_DETECTORS: "none" },
    expect: { otlp: true, hostName: false },
  },
];

for (const row of ROWS) {
  test(`OTEL_* as in a plain NodeSDK app: ${row.name}`, async () => {
    const plain = await run("plain", row.env);
    const ours = await run("ours", row.env);
    assert.deepEqual(ours, plain, "this package and a plain NodeSDK app on the same settings");
    assert.deepEqual(
      Object.fromEntries(Object.keys(row.expect).map((k) => [k, plain[k as keyof Outcome]])),
      row.expect,
      "what both should do",
    );
  });
}
