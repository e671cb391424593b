/**
 * Loading the SDK and the exporter without holding up the shell.
 *
 * Node links and evaluates an import graph in one synchronous run: importing
 * the SDK and the exporter at once held the event loop for 0.5 to 0.9 s just
 * after the first prompt, so the first command typed there waited that long
 * for its answer. Importing the same packages one module per turn of the
 * event loop, each after the modules it imports, gives the loop back between
 * them: keystrokes, timers and the program's own I/O run in the gaps, and
 * the longest hold is the largest single module (or CommonJS package, whose
 * `require` tree loads at once) rather than the sum. The order is planned by
 * module-steps.ts over the graph as Node resolves it (module-imports.ts), in
 * a process of its own (module-plan.ts); the instrumentation's few packages,
 * needed first, and everything when there is no plan, go one package a turn.
 *
 * The steps are a warm-up, not the loading itself: the imports that follow
 * (sdk.ts and what it loads) find these modules evaluated. A step that fails
 * (a package this install does not have, or does not hoist where we can
 * resolve it) is skipped; the real import reports any problem. The packages
 * named below are resolved from here, as npm hoists them (where an install
 * nests another version, a step loads a copy nothing uses, which costs time
 * but changes nothing); what they import, as Node resolves it from each
 * importing module.
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

/** How long the plan is waited for before each package is loaded as one step. */
const PLAN_TIMEOUT_MS = 10_000;

/** Which modules to import, one per step, for each specifier (see {@link planSteps}). */
export type Plan = ReadonlyMap<string, readonly string[]>;

/**
 * The steps for each of `specifiers` (as {@link importInSlices} takes them),
 * planned by module-plan.ts in a process of its own, which also resolves
 * them; undefined when that fails (no process can be started here, it
 * fails, or it takes longer than {@link PLAN_TIMEOUT_MS}). The process runs
 * at the lowest priority, without NODE_OPTIONS (it must not load this
 * package again through an `--import` there); it and its pipe never keep
 * this one alive, the wait for it only as the steps do.
 */
export async function planSteps(specifiers: readonly string[]): Promise<Plan | undefined> {
  const [{ spawn }, { fileURLToPath }, { setPriority }] = await Promise.all([
    import("node:child_process"),
    import("node:url"),
    import("node:os"),
  ]);
  const { NODE_OPTIONS: _ignored, ...env } = process.env;
  const args = [import.meta.url, ...specifiers.map(ownModule)];
  const planned = new Promise<Plan | undefined>((resolve) => {
    let output = "";
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(process.execPath, [fileURLToPath(new URL(`./module-plan${extension}`, import.meta.url)), ...args], {
        stdio: ["ignore", "pipe", "ignore"],
        env,
        windowsHide: true,
      });
    } catch {
      resolve(undefined);
      return;
    }
    try {
      // Background work: the shell, and the program around it, come first on a busy machine.
      if (child.pid !== undefined) setPriority(child.pid, 19);
    } catch {
      // Not allowed here: it runs at the program's priority.
    }
    const timer = setTimeout(() => child.kill(), PLAN_TIMEOUT_MS);
    timer.unref();
    child.unref();
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      output += chunk;
    });
    (child.stdout as { unref?: () => void } | null)?.unref?.();
    child.on("error", () => resolve(undefined));
    child.on("close", (code) => {
      clearTimeout(timer);
      try {
        const plans = JSON.parse(output) as unknown;
        const valid =
          code === 0 &&
          Array.isArray(plans) &&
          plans.length === specifiers.length &&
          plans.every((steps) => Array.isArray(steps) && steps.every((step) => typeof step === "string"));
        resolve(valid ? new Map(specifiers.map((specifier, i) => [specifier, plans[i] as string[]])) : undefined);
      } catch {
        resolve(undefined);
      }
    });
  });
  // The wait holds the process as the steps do (see nextTurn): while no shell has opened yet or one still runs.
  const hold = setInterval(() => {
    if (everyShellEnded()) hold.unref();
  }, 25);
  if (everyShellEnded()) hold.unref();
  return planned.finally(() => clearInterval(hold));
}

/** Our own modules are named by their source path (the build turns .ts into .js); anything else as it is. */
function ownModule(specifier: string): string {
  return specifier.startsWith(".") ? new URL(specifier.replace(/\.ts$/, extension), import.meta.url).href : specifier;
}

/**
 * Imports `specifiers` (package names, resolved from here; file URLs; or our
 * own modules by their source path) in order, one module per turn of the
 * event loop as `plan` has them, each as one step where it has none;
 * failures are skipped.
 */
export async function importInSlices(specifiers: readonly string[], plan?: Plan): Promise<void> {
  for (const specifier of specifiers) {
    for (const step of plan?.get(specifier) ?? [ownModule(specifier)]) {
      await nextTurn();
      try {
        await import(step);
      } catch {
        // Skipped: see the comment at the top.
      }
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
  // Without a plan: these come first, and starting the plan's process at once held up the prompt's first answer.
  await importInSlices(INSTRUMENTATION);
  // Asked once the API is loaded: this module itself loads nothing of OpenTelemetry before the first turn.
  const { globalTracerProviderRegistered } = await import("./global-sdk.ts");
  const ownSdk = !sdkDisabled(env) && !globalTracerProviderRegistered();
  const rest = [...(ownSdk ? NODE_SDK : []), ...(isDeliveryOff(env.SHELL_SESSIONS_DELIVERY) ? [] : DELIVERY)];
  await importInSlices(rest, await planSteps(rest));
}
