/**
 * Full set-up in code, for an app that does not use
 * `--import otel-shell-sessions/register`: the OpenTelemetry Node SDK
 * (exporters from the standard OTEL_* variables) with shell session tracking,
 * per-input spans, and one extra span processor of the app's own.
 *
 *   OTEL_SERVICE_NAME=inventory node examples/programmatic-setup.ts
 *
 * An application imports from "otel-shell-sessions"; this example imports
 * the sources so that it runs from a checkout.
 */
import { start } from "node:repl";
import type { Context } from "@opentelemetry/api";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace";
import { startShellTelemetry, trackShell } from "../src/index.ts";

/** An app's own processor: counts the inputs evaluated in its shells. */
class InputCounter implements SpanProcessor {
  count = 0;
  onStart(_span: Span, _parentContext: Context): void {}
  onEnd(span: ReadableSpan): void {
    if (span.name === "shell.eval") this.count++;
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

const counter = new InputCounter();
const telemetry = await startShellTelemetry({
  component: "inventory",
  evalSpans: true, // one child span per input; the input text itself is not recorded
  spanProcessors: [counter],
});
console.log(`telemetry: ${telemetry.mode}`);

const shell = start({ prompt: "inventory> " });
shell.context.stock = { widgets: 12, gadgets: 3 };
const session = trackShell(shell, { version: "1.4.0", adapters: ["memory"] });
await session.ready;

shell.on("exit", async () => {
  console.log(`inputs evaluated: ${counter.count}, trace ${session.traceId}`);
  await telemetry.shutdown();
});
