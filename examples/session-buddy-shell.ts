/**
 * Session-Buddy's admin shell, built on the programmatic API with
 * `repl.start()`, naming its shell type explicitly.
 *
 *   node examples/session-buddy-shell.ts
 *
 * Inside, `session.traceId` is the correlation id to look up in your tracing
 * back end. An application imports from "otel-shell-sessions"; this example
 * imports the sources so that it runs from a checkout.
 */
import { start } from "node:repl";
import { startShellTelemetry, trackShell } from "../src/index.ts";

const telemetry = startShellTelemetry({ serviceName: "session-buddy" });

const shell = start({ prompt: "session-buddy> " });
shell.context.store = { kind: "sqlite", path: ":memory:" };
const session = trackShell(shell, {
  component: "session-buddy",
  shellType: "SessionBuddyShell",
  version: "0.9.1",
  adapters: ["sqlite"],
});

shell.defineCommand("trace", {
  help: "Show the trace id of this session",
  action() {
    this.output.write(`${session.traceId ?? "not started yet"}\n`);
    this.displayPrompt();
  },
});

shell.on("exit", async () => {
  await (await telemetry).shutdown();
});
