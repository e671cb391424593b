/**
 * Loading the SDK and the exporter without holding up the shell.
 *
 * Node links and evaluates an import graph in one synchronous run: importing
 * the SDK and the exporter at once held the event loop for 0.5 to 0.9 s just
 * after the first prompt, so the first command typed there waited that long
 * for its answer. Importing the same packages one per turn of the event loop,
 * dependencies first, gives the loop back between them (each import then
 * evaluates only what the earlier ones have not): keystrokes, timers and the
 * program's own I/O run in the gaps, and the longest hold is the largest
 * single package rather than the sum.
 *
 * The steps are a warm-up, not the loading itself: the imports that follow
 * (sdk.ts and what it loads) find these modules evaluated. A step that fails
 * (a package this install does not have, or does not hoist where we can
 * resolve it) is skipped; the real import reports any problem. Packages we do
 * not depend on directly are resolved from here as npm hoists them; where an
 * install nests another version, the step loads a copy nothing uses, which
 * costs time but changes nothing.
 */
import { sdkDisabled } from "../instrumentation/exit-paths.ts";
import { registry } from "../instrumentation/registry.ts";
import { isDeliveryOff } from "../journal/switch.ts";

/** What the instrumentation itself needs, whatever the configuration. */
const INSTRUMENTATION = [
  "@opentelemetry/api",
  // Before core, which imports it: core alone is then a smaller step.
  "@opentelemetry/semantic-conventions",
  "@opentelemetry/core",
  "@opentelemetry/instrumentation",
];

/** The SDK pieces, then the packages `@opentelemetry/sdk-node` imports (every exporter it can build), then it. */
const NODE_SDK = [
  "@opentelemetry/resources",
  "@opentelemetry/sdk-trace",
  "@opentelemetry/sdk-metrics",
  "@opentelemetry/context-async-hooks",
  "@opentelemetry/sdk-logs",
  "@opentelemetry/otlp-exporter-base",
  "protobufjs/minimal.js",
  "@opentelemetry/otlp-transformer",
  "@opentelemetry/exporter-trace-otlp-http",
  "@opentelemetry/exporter-trace-otlp-proto",
  "@opentelemetry/exporter-metrics-otlp-http",
  "@opentelemetry/exporter-metrics-otlp-proto",
  "@opentelemetry/exporter-logs-otlp-http",
  "@opentelemetry/exporter-logs-otlp-proto",
  "@opentelemetry/exporter-prometheus",
  "@opentelemetry/exporter-zipkin",
  "@opentelemetry/propagator-b3",
  "protobufjs",
  "@grpc/proto-loader",
  "@grpc/grpc-js",
  "@opentelemetry/otlp-grpc-exporter-base",
  "@opentelemetry/exporter-trace-otlp-grpc",
  "@opentelemetry/exporter-metrics-otlp-grpc",
  "@opentelemetry/exporter-logs-otlp-grpc",
  "yaml",
  "@opentelemetry/configuration",
  "@opentelemetry/sdk-node",
];

/** Session delivery: its libraries, the contract's schemas, and the MCP client it connects with. */
const DELIVERY = [
  "opossum",
  "jose",
  "zod/v4/core",
  "zod",
  "../contract/index.ts",
  "../exporter/index.ts",
  "@modelcontextprotocol/core",
  "@modelcontextprotocol/client",
  "@modelcontextprotocol/client/validators/cf-worker",
];

/** Shells have been opened in this process, and every one of them has ended. */
function everyShellEnded(): boolean {
  const reg = registry();
  return reg.journal !== undefined && [...reg.live].every((session) => session.ended);
}

/**
 * One turn of the event loop: pending I/O (a keystroke) is handled before
 * the next step. Once every shell has ended, the loading no longer holds the
 * process: a program that is done exits at once, as when its shells end
 * before the loading begins (their starts and ends are in the write-ahead
 * journal, which the drain helper delivers), instead of loading the SDK for
 * the best part of a second first. A program that runs on loads it all.
 */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    const turn = setImmediate(resolve);
    if (everyShellEnded()) turn.unref();
  });
}

/** Imports `specifiers` in order, one per turn of the event loop; failures are skipped. */
export async function importInSlices(specifiers: readonly string[]): Promise<void> {
  for (const specifier of specifiers) {
    await nextTurn();
    try {
      // Our own modules are named by their source path; the build turns .ts into .js.
      await import(specifier.startsWith(".") ? specifier.replace(/\.ts$/, extension) : specifier);
    } catch {
      // Skipped: see the comment at the top.
    }
  }
  await nextTurn();
}

const extension = import.meta.url.endsWith(".ts") ? ".ts" : ".js";

/**
 * The warm-up for the configuration in `env`: the instrumentation's packages;
 * the Node SDK's only when this process will build its own SDK (not when it
 * is disabled or another SDK is already registered); the exporter's only when
 * delivery is on.
 */
export async function warmUp(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await importInSlices(INSTRUMENTATION);
  // Asked once the API is loaded: this module itself loads nothing of OpenTelemetry before the first turn.
  const { globalTracerProviderRegistered } = await import("./global-sdk.ts");
  const ownSdk = !sdkDisabled(env) && !globalTracerProviderRegistered();
  await importInSlices([...(ownSdk ? NODE_SDK : []), ...(isDeliveryOff(env.SHELL_SESSIONS_DELIVERY) ? [] : DELIVERY)]);
}
