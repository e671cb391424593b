/**
 * The span processors that deliver session events to a Session-Buddy-compatible
 * tracker, as configured by the environment. `register` and
 * `startShellTelemetry` add these to the SDK they build.
 *
 * `SHELL_SESSIONS_DELIVERY=off` returns none. The exporter is imported on
 * demand, so a program with delivery off never loads it.
 */
import type { SpanProcessor } from "@opentelemetry/sdk-trace";

export async function deliverySpanProcessors(env: NodeJS.ProcessEnv = process.env): Promise<SpanProcessor[]> {
  const { isDeliveryOff } = await import("../exporter/options.ts");
  if (isDeliveryOff(env.SHELL_SESSIONS_DELIVERY)) return [];
  const { createSessionSpanProcessor } = await import("../exporter/index.ts");
  const processor = createSessionSpanProcessor({ env });
  return processor ? [processor] : [];
}
