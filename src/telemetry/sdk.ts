/**
 * Starting telemetry for shell sessions: the OpenTelemetry Node SDK,
 * configured from the standard `OTEL_*` variables, with the shell session
 * instrumentation and the session delivery processors, or, when another SDK
 * is already registered in the process, the instrumentation attached to it.
 *
 * This is the heavy part of the package. It is loaded after the first
 * prompt is on screen (see bootstrap.ts), never on the way to it.
 */
import { diag, metrics, ProxyTracerProvider, trace } from "@opentelemetry/api";
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import type { IMetricReader } from "@opentelemetry/sdk-metrics";
import type { SpanProcessor } from "@opentelemetry/sdk-trace";
import { settledWithin } from "../deadline.ts";
import { flushTelemetry, sdkDisabled } from "../instrumentation/exit-paths.ts";
import { ShellSessionInstrumentation } from "../instrumentation/instrumentation.ts";
import { registry } from "../instrumentation/registry.ts";
import { openTelemetryApiRange } from "../package-info.ts";
import { deliverySpanProcessors } from "./delivery.ts";
import { metricReadersFromEnv, spanProcessorsFromEnv } from "./env.ts";
import { foreignApiVersion, globalTracerProviderRegistered } from "./global-sdk.ts";
import { leaving } from "./leaving.ts";
import { telemetryState } from "./state.ts";
import type { ShellTelemetry, ShellTelemetryOptions } from "./types.ts";

/**
 * How long a natural exit (or `shutdown()`) waits for the last export. The
 * exporters we build give up sooner (leaving.ts), so this only bounds what we
 * do not control.
 */
export const EXIT_FLUSH_TIMEOUT_MS = 500;

interface Flushable {
  forceFlush?: () => Promise<unknown>;
}

function globalTracerProvider(): Flushable {
  const provider = trace.getTracerProvider();
  return (provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider) as Flushable;
}

async function flushOf(target: Flushable): Promise<void> {
  if (typeof target.forceFlush === "function") await target.forceFlush();
}

async function delivery(spans = true): Promise<SpanProcessor[]> {
  try {
    return await deliverySpanProcessors(process.env, { spans });
  } catch (error) {
    // Shells keep working and the other exporters keep exporting without delivery.
    diag.error(
      `shell session delivery is off: ${error instanceof Error ? error.message : "could not set up its span processors"}`,
    );
    return [];
  }
}

/**
 * Registers `flush` for the signal and exit paths, and flushes before a
 * natural exit, once per batch of ended sessions (`beforeExit` fires again
 * after the flush). Returns what undoes both.
 */
function flushOnExit(flush: () => Promise<void>): () => void {
  const reg = registry();
  const { flushers } = telemetryState();
  flushers.add(flush);
  const onBeforeExit = () => {
    if (!reg.unflushed) return;
    leaving();
    void flushTelemetry(EXIT_FLUSH_TIMEOUT_MS);
  };
  process.on("beforeExit", onBeforeExit);
  return () => {
    flushers.delete(flush);
    process.removeListener("beforeExit", onBeforeExit);
  };
}

function attach(instrumentation: ShellSessionInstrumentation, sessionProcessors: SpanProcessor[]): ShellTelemetry {
  // Said because OTEL_* settings meant for this package's SDK (exporters, sampler) then do not apply.
  diag.warn(
    "otel-shell-sessions: an OpenTelemetry SDK is already registered in this process; shell sessions join it, " +
      "with its exporters, sampler and resource, rather than starting a second one",
  );
  // Another SDK owns the providers and cannot be given more processors: session spans reach ours directly.
  instrumentation.setSessionSpanProcessors(sessionProcessors);
  registerInstrumentations({ instrumentations: [instrumentation] });
  const flush = async () => {
    await Promise.allSettled([flushOf(globalTracerProvider()), ...sessionProcessors.map((p) => p.forceFlush())]);
  };
  const stopExitFlush = flushOnExit(flush);
  return {
    mode: "attached",
    instrumentation,
    forceFlush: flush,
    async shutdown() {
      stopExitFlush();
      await flush();
      instrumentation.disable();
      await Promise.allSettled(sessionProcessors.map((p) => p.shutdown()));
    },
  };
}

/**
 * `OTEL_SDK_DISABLED=true`: no spans, no metrics, no exporters; but shells
 * are still delivered to the tracker, which is an audit record and not
 * telemetry (only `SHELL_SESSIONS_DELIVERY=off` turns it off).
 */
async function startWithoutSdk(instrumentation: ShellSessionInstrumentation): Promise<ShellTelemetry> {
  const processors = await delivery(false);
  const flush = async () => {
    await Promise.allSettled(processors.map((p) => p.forceFlush()));
  };
  const stopExitFlush = flushOnExit(flush);
  return {
    mode: "disabled",
    instrumentation,
    forceFlush: flush,
    async shutdown() {
      stopExitFlush();
      await Promise.allSettled(processors.map((p) => p.shutdown()));
    },
  };
}

/** The `name` of the Node warning about the conflict below, so that a program can recognise it. */
export const API_CONFLICT_WARNING = "OpenTelemetryApiConflictWarning";

/**
 * The process's providers belong to an `@opentelemetry/api` copy that ours
 * cannot share (global-sdk.ts), typically an app on an older OpenTelemetry
 * stack. Joining its SDK is impossible and registering ours would fail, so
 * session spans and metrics get providers of their own, never registered,
 * that export where the `OTEL_*` variables say; delivery to the tracker is
 * unchanged. Said once as a Node process warning: the app's diag logger is
 * out of this API copy's reach too, and silence would hide the split.
 */
async function isolated(
  instrumentation: ShellSessionInstrumentation,
  spanProcessors: SpanProcessor[],
  readers: IMetricReader[],
  serviceName: string | undefined,
  foreignVersion: string,
): Promise<ShellTelemetry> {
  const [{ TracerProvider }, { MeterProvider }, resources] = await Promise.all([
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/sdk-metrics"),
    import("@opentelemetry/resources"),
  ]);
  const { detectResources, hostDetector, processDetector, resourceAttributesEnvDetector, serviceNameEnvDetector } =
    resources;
  let resource = resources.defaultResource().merge(
    detectResources({
      detectors: [hostDetector, processDetector, resourceAttributesEnvDetector, serviceNameEnvDetector],
    }),
  );
  if (serviceName) resource = resource.merge(resources.resourceFromAttributes({ "service.name": serviceName }));
  const tracerProvider = new TracerProvider({ resource, spanProcessors });
  const meterProvider = new MeterProvider({ resource, readers });
  registerInstrumentations({ instrumentations: [instrumentation], tracerProvider, meterProvider });
  process.emitWarning(
    `otel-shell-sessions: this process's OpenTelemetry providers belong to @opentelemetry/api ${foreignVersion}, ` +
      `which this package's SDK (it needs @opentelemetry/api ${openTelemetryApiRange}) cannot share. ` +
      "Shells are still recorded by the tracker, and their spans and metrics go where the OTEL_* variables say, " +
      `but not through the app's own SDK. To share one SDK, move the app to @opentelemetry/api ${openTelemetryApiRange}.`,
    { type: API_CONFLICT_WARNING },
  );
  const flush = async () => {
    await Promise.allSettled([tracerProvider.forceFlush(), meterProvider.forceFlush()]);
  };
  return owned("isolated", instrumentation, flush, () =>
    Promise.allSettled([tracerProvider.shutdown(), meterProvider.shutdown()]),
  );
}

/** Telemetry whose providers this package started: flushed on the exit paths, stopped within the exit bound. */
function owned(
  mode: "sdk" | "isolated",
  instrumentation: ShellSessionInstrumentation,
  flush: () => Promise<void>,
  stop: () => Promise<unknown>,
): ShellTelemetry {
  const stopExitFlush = flushOnExit(flush);
  return {
    mode,
    instrumentation,
    forceFlush: flush,
    async shutdown() {
      stopExitFlush();
      instrumentation.disable();
      // Usually called as the program ends: bounded, and never a rejection (an unreachable Collector is no error of the program's).
      leaving();
      const done = stop().catch((error: unknown) => {
        diag.debug(`telemetry shutdown: ${error instanceof Error ? error.message : typeof error}`);
      });
      await settledWithin(done, EXIT_FLUSH_TIMEOUT_MS, { unref: true });
    },
  };
}

export async function startSdk(options: ShellTelemetryOptions = {}): Promise<ShellTelemetry> {
  const { serviceName, spanProcessors: extra = [], metricReaders, ...config } = options;
  const instrumentation = new ShellSessionInstrumentation({ ...config, enabled: false });
  if (sdkDisabled()) return startWithoutSdk(instrumentation);
  const sessionProcessors = [...(await delivery()), ...extra];
  if (globalTracerProviderRegistered()) return attach(instrumentation, sessionProcessors);

  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  // Said once the SDK has set up its diag logger (its constructor does, from OTEL_LOG_LEVEL).
  const warnings: string[] = [];
  const later = (message: string) => warnings.push(message);
  const envProcessors = await spanProcessorsFromEnv(process.env, later);
  const readers = metricReaders ?? (await metricReadersFromEnv(process.env, later));
  const envServiceName = (await import("../service-name.ts")).serviceNameFromEnv();
  // Checked again: another SDK may have registered while these were loading.
  if (globalTracerProviderRegistered()) {
    await Promise.allSettled([...envProcessors.map((p) => p.shutdown()), ...readers.map((r) => r.shutdown())]);
    return attach(instrumentation, sessionProcessors);
  }
  const name = serviceName ?? envServiceName ?? config.component ?? process.env.SHELL_SESSIONS_COMPONENT;
  const foreign = foreignApiVersion();
  if (foreign !== undefined) {
    for (const warning of warnings) diag.warn(warning);
    return isolated(instrumentation, [...envProcessors, ...sessionProcessors], readers, name, foreign);
  }
  const sdk = new NodeSDK({
    serviceName: name,
    spanProcessors: [...envProcessors, ...sessionProcessors],
    metricReaders: readers,
    instrumentations: [instrumentation],
  });
  for (const warning of warnings) diag.warn(warning);
  sdk.start();
  const flush = async () => {
    await Promise.allSettled([flushOf(globalTracerProvider()), flushOf(metrics.getMeterProvider() as Flushable)]);
  };
  return owned("sdk", instrumentation, flush, () => sdk.shutdown());
}
