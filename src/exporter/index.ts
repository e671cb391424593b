/**
 * Delivery of shell sessions to a Session-Buddy-compatible tracker over MCP:
 * the span processor, the delivery engine behind it, and its spool.
 */
import type { MeterProvider, TracerProvider } from "@opentelemetry/api";
import { createLogger, type Logger, parseLogLevel } from "../log.ts";
import { SessionDelivery } from "./delivery.ts";
import { SessionFeed } from "./feed.ts";
import { type DeliveryOptions, describeTransport, ENV, resolveDeliveryOptions } from "./options.ts";
import { SessionSpanProcessor } from "./processor.ts";

export { createLogger, type Logger, parseLogLevel } from "../log.ts";
export { type DrainSummary, SessionDelivery } from "./delivery.ts";
export {
  DEFAULT_URL,
  DEFAULTS,
  type DeliveryOptions,
  describeTransport,
  ENV,
  resolveDeliveryOptions,
  SPOOL_FILE_NAME,
  spoolPathFor,
  type TransportSpec,
} from "./options.ts";
export { SessionSpanProcessor } from "./processor.ts";
export { Spool, type SpoolStats } from "./spool.ts";

export interface CreateProcessorOptions {
  env?: NodeJS.ProcessEnv;
  /** Overrides of settings that otherwise come from the environment. */
  overrides?: Partial<DeliveryOptions>;
  log?: Logger;
  meterProvider?: MeterProvider;
  tracerProvider?: TracerProvider;
  /**
   * Whether session spans will start in this process (default true). With
   * false (the SDK is disabled), each shell's start is delivered at once
   * instead of waiting for its span.
   */
  spans?: boolean;
}

/**
 * The session span processor configured from the environment, or undefined
 * when delivery is switched off. Never throws: a bad setting is reported and
 * its default used.
 */
export function createSessionSpanProcessor(options: CreateProcessorOptions = {}): SessionSpanProcessor | undefined {
  const env = options.env ?? process.env;
  const log = options.log ?? createLogger(parseLogLevel(env[ENV.log]) ?? "warn");
  const resolved = resolveDeliveryOptions(env, options.overrides);
  for (const problem of resolved.problems) log.warn(problem.message);
  if (!resolved.enabled) {
    log.debug(`session delivery is off (${resolved.reason})`);
    return undefined;
  }
  log.debug(`delivering sessions to ${describeTransport(resolved.options.transport)}`);
  const delivery = new SessionDelivery({
    options: resolved.options,
    log,
    mode: "live",
    ...(options.meterProvider ? { meterProvider: options.meterProvider } : {}),
    ...(options.tracerProvider ? { tracerProvider: options.tracerProvider } : {}),
  });
  // The shells of this process are delivered from their write-ahead records, sampled or not.
  const feed = new SessionFeed(delivery, {
    spans: options.spans ?? true,
    keepJournalMs: resolved.options.idleCloseMs,
  });
  return new SessionSpanProcessor(delivery, feed);
}
