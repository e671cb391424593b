/**
 * The span processors that deliver session events to a Session-Buddy-compatible
 * tracker, as configured by the environment. `register` and
 * `startShellTelemetry` add these to the SDK they build.
 *
 * `SHELL_SESSIONS_DELIVERY=off` returns none. The exporter is imported on
 * demand, so a program with delivery off never loads it. With the SDK
 * disabled (`spans: false`) delivery still runs: it is an audit record, not
 * telemetry.
 */
import type { SpanProcessor } from "@opentelemetry/sdk-trace";
import { isDeliveryOff } from "../journal/switch.ts";

export async function deliverySpanProcessors(
  env: NodeJS.ProcessEnv = process.env,
  { spans = true }: { spans?: boolean } = {},
): Promise<SpanProcessor[]> {
  if (isDeliveryOff(env.SHELL_SESSIONS_DELIVERY)) return [];
  const { createSessionSpanProcessor } = await import("../exporter/index.ts");
  const processor = createSessionSpanProcessor({ env, spans });
  return processor ? [processor] : [];
}
