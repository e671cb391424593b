/**
 * Mahavishnu's admin shell, built on the programmatic API: its own shell
 * class, version and adapters, tracked with one call.
 *
 *   node examples/mahavishnu-shell.ts
 *
 * Standard OTEL_* variables configure where telemetry goes (OTLP to
 * localhost:4318 by default; OTEL_TRACES_EXPORTER=console to print spans).
 * An application imports from "otel-shell-sessions"; this example imports
 * the sources so that it runs from a checkout.
 */
import { REPLServer, type ReplOptions } from "node:repl";
import { startShellTelemetry, trackShell } from "../src/index.ts";

const VERSION = "2.3.0";
const ADAPTERS = ["redis", "postgres"];

// Node documents `new REPLServer(options)`; @types/node marks the constructor private.
const Shell = REPLServer as unknown as new (options: ReplOptions) => REPLServer;

/** The class name is the session's `shell.type`. */
class MahavishnuShell extends Shell {}

// Not awaited: the prompt comes first. The shell is recorded from its first
// moment and its span starts, with that start time, once the SDK is up.
const telemetry = startShellTelemetry({ serviceName: "mahavishnu" });

const shell = new MahavishnuShell({ prompt: "mahavishnu> " });
shell.context.workflows = new Map([["nightly-sync", { status: "idle" }]]);
shell.context.adapters = ADAPTERS;
trackShell(shell, { component: "mahavishnu", version: VERSION, adapters: ADAPTERS });

shell.on("exit", async () => {
  await (await telemetry).shutdown();
});
