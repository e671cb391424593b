/**
 * `shell-sessions shell`: an admin shell for a demo component, with session
 * tracking on. It opens as fast as a bare `node` REPL: only the hook that
 * records the session is loaded before the prompt; the OpenTelemetry SDK,
 * its exporters and session delivery load after it (see telemetry/bootstrap.ts).
 */
import { type REPLServer, start } from "node:repl";
import { version } from "../../package-info.ts";
import { bootstrapTelemetry } from "../../telemetry/bootstrap.ts";
import type { ShellTelemetry } from "../../telemetry/types.ts";

// On the way to the prompt every millisecond shows: node:util through its CommonJS
// exports (its ES module facade costs more).
const { parseArgs } = process.getBuiltinModule("node:util");

export const DEFAULT_COMPONENT = "demo";
export const SHELL_TYPE = "DemoShell";
export const ADAPTERS = ["memory"];
/** How long leaving the shell waits for the last telemetry to be exported. */
export const SHUTDOWN_TIMEOUT_MS = 5000;
// The contract's component name rule (Session-Buddy's), checked here without loading the contract's schemas.
const COMPONENT_NAME = /^[a-zA-Z0-9_-]+$/;

export const usage = `Usage: shell-sessions shell [options]

Open an admin shell for a demo component, with session tracking on. The
session is an OpenTelemetry span whose trace id is shown in the banner and
in the shell as \`session.traceId\`; its start and end are delivered to a
Session-Buddy-compatible tracker.

Options:
  --component <name>  component name, letters, digits, '_' and '-'
                      (default: $SHELL_SESSIONS_COMPONENT, else "${DEFAULT_COMPONENT}")
  --no-tracking       open the shell without telemetry
  --eval-spans        one \`shell.eval\` span per input (input text not recorded)
  --capture-input     record input text on those spans, tokens and passwords
                      masked (implies --eval-spans)
  -h, --help          show this help

In the shell: \`inventory\` (a small in-memory stock), \`health()\`, \`session\`,
.session to show the session, .help for all commands, .exit (or Ctrl-D) to leave.

Environment:
  OTEL_SERVICE_NAME               service.name of the telemetry (default: the component)
  OTEL_TRACES_EXPORTER            otlp, console or none (default: otlp when an OTLP endpoint is set, else none)
  OTEL_EXPORTER_OTLP_ENDPOINT     where OTLP goes, e.g. http://localhost:4318
  OTEL_EXPORTER_OTLP_PROTOCOL     http/protobuf (default), http/json or grpc
  OTEL_METRICS_EXPORTER           otlp, prometheus (serves :9464/metrics), console or none
                                  (default: otlp when an OTLP endpoint is set, else none)
  SESSION_BUDDY_URL               the tracker (default http://127.0.0.1:8678/mcp)
  SHELL_SESSIONS_DELIVERY=off     do not deliver sessions to the tracker
  SHELL_SESSIONS_BANNER=off       no "session tracking on" line
`;

const OTLP_ENDPOINT_VARIABLES = [
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
  "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
  "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
];

/**
 * The demo is what `npm start` opens on a laptop with no Collector. The OTLP
 * exporters' standard default would send to localhost:4318 and, with nothing
 * there, retry for about 8 s on the way out; so unless an OTLP endpoint is
 * configured, exporters the user did not choose are off (delivery to the
 * tracker is not an OTLP exporter and stays on).
 */
export function applyDemoExporterDefaults(env: NodeJS.ProcessEnv): void {
  if (OTLP_ENDPOINT_VARIABLES.some((name) => env[name])) return;
  for (const name of ["OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"]) {
    if (!env[name]) env[name] = "none";
  }
}

function usageError(message: string): number {
  process.stderr.write(`shell-sessions shell: ${message}\n\n${usage}`);
  return 2;
}

interface Stock {
  list(): Array<{ sku: string; name: string; count: number }>;
  take(sku: string, count?: number): number;
}

function demoInventory(): Stock {
  const items = new Map([
    ["W-1", { name: "widget", count: 12 }],
    ["G-7", { name: "gadget", count: 3 }],
  ]);
  return {
    list: () => [...items].map(([sku, item]) => ({ sku, ...item })),
    take(sku, count = 1) {
      const item = items.get(sku);
      if (item === undefined) throw new Error(`no item ${sku}`);
      if (item.count < count) throw new Error(`only ${item.count} of ${sku} left`);
      item.count -= count;
      return item.count;
    },
  };
}

interface ShellFlags {
  component?: string;
  tracking?: boolean;
  "eval-spans"?: boolean;
  "capture-input"?: boolean;
  help?: boolean;
}

export async function run(args: string[]): Promise<number> {
  let values: ShellFlags;
  try {
    values = parseFlags(args);
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const component = values.component ?? (process.env.SHELL_SESSIONS_COMPONENT || DEFAULT_COMPONENT);
  if (!COMPONENT_NAME.test(component)) {
    return usageError(
      `--component: must contain only letters, digits, '_' and '-' (received ${JSON.stringify(component.slice(0, 60))})`,
    );
  }
  const telemetry = values.tracking ? startTelemetry(component, values) : undefined;

  const server = openShell(component, values.tracking === true);
  await new Promise<void>((resolve) => server.once("exit", () => resolve()));
  if (telemetry !== undefined) {
    // Loaded here, not at the top: nothing on the way to the prompt needs it.
    const { settledWithin } = await import("../../deadline.ts");
    await settledWithin(
      telemetry.then((t) => t.shutdown()),
      SHUTDOWN_TIMEOUT_MS,
    );
  }
  return 0;
}

/** Throws on an unknown or malformed flag. */
function parseFlags(args: string[]): ShellFlags {
  return parseArgs({
    args,
    allowNegative: true,
    options: {
      component: { type: "string" },
      tracking: { type: "boolean", default: true },
      "eval-spans": { type: "boolean" },
      "capture-input": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
}

/** Starts loading telemetry; the prompt does not wait for it. */
function startTelemetry(component: string, values: ShellFlags): Promise<ShellTelemetry> {
  const captureInput = values["capture-input"] === true;
  applyDemoExporterDefaults(process.env);
  return bootstrapTelemetry({
    component,
    shellType: SHELL_TYPE,
    version,
    adapters: ADAPTERS,
    evalSpans: values["eval-spans"] === true || captureInput,
    captureInput,
  });
}

/** Prints the banner and opens the REPL with the demo objects and the `.session` command. */
function openShell(component: string, tracking: boolean): REPLServer {
  process.stdout.write(
    `${component} admin shell (otel-shell-sessions ${version}) · .help for commands, .exit to leave\n` +
      (tracking ? "" : "session tracking off\n"),
  );
  const server = start({ prompt: `${component}> ` });
  const inventory = demoInventory();
  const preload = (context: Record<string, unknown>) => {
    context.inventory = inventory;
    context.health = () => ({ component, status: "ok", uptimeSeconds: Math.round(process.uptime()) });
  };
  preload(server.context);
  // `.clear` gives the shell a fresh context: put the demo objects back.
  server.on("reset", preload);
  server.defineCommand("session", {
    help: "Show this shell's session id and trace id",
    action() {
      const info = (server.context as { session?: unknown }).session;
      this.output.write(info === undefined ? "session tracking is off\n" : `${JSON.stringify(info, null, 2)}\n`);
      this.displayPrompt();
    },
  });
  return server;
}
