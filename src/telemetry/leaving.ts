/**
 * Exporters that let a process leave at once.
 *
 * A process whose shell has closed flushes its telemetry once more before it
 * exits, so the session span is not lost. An OTLP exporter with no Collector
 * listening answers that flush with retries on referenced timers for up to
 * its timeout (10 s by default), and the terminal waits that long. So each
 * OTLP exporter we build has a twin with the same settings but a short
 * timeout (which also leaves no time for a retry); once the process is
 * leaving, exports go through the twin: what it cannot send in that time is
 * dropped, with a debug line. Sessions themselves are not at stake here: they
 * are written ahead and delivered by their own path.
 */
import { diag } from "@opentelemetry/api";
import { type ExportResult, ExportResultCode } from "@opentelemetry/core";
import type { PushMetricExporter, ResourceMetrics } from "@opentelemetry/sdk-metrics";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";

/** How long an export made while the process is leaving may take. */
export const LEAVING_EXPORT_TIMEOUT_MS = 200;

const leavingExporters = new Set<{ leave(): void }>();

/** From now on, every exporter built here exports through its quick twin. */
export function leaving(): void {
  for (const exporter of leavingExporters) exporter.leave();
}

function droppedLine(what: string) {
  return (result: ExportResult) => {
    if (result.code !== ExportResultCode.SUCCESS) {
      diag.debug(`${what} not exported while the process was leaving: ${result.error?.message ?? "failed"}`);
    }
  };
}

abstract class LeavingAware<E extends { shutdown(): Promise<void>; forceFlush?(): Promise<void> }> {
  protected readonly live: E;
  readonly #makeQuick: () => E;
  #quick: E | undefined;
  #leaving = false;

  constructor(live: E, makeQuick: () => E) {
    this.live = live;
    this.#makeQuick = makeQuick;
    leavingExporters.add(this);
  }

  leave(): void {
    this.#leaving = true;
  }

  protected get current(): E {
    if (!this.#leaving) return this.live;
    this.#quick ??= this.#makeQuick();
    return this.#quick;
  }

  async forceFlush(): Promise<void> {
    await this.current.forceFlush?.();
  }

  async shutdown(): Promise<void> {
    leavingExporters.delete(this);
    await Promise.allSettled([this.live.shutdown(), this.#quick?.shutdown()]);
  }
}

export class LeavingAwareSpanExporter extends LeavingAware<SpanExporter> implements SpanExporter {
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    const log = droppedLine(`${spans.length} span(s)`);
    this.current.export(spans, (result) => {
      log(result);
      done(result);
    });
  }
}

export class LeavingAwareMetricExporter extends LeavingAware<PushMetricExporter> implements PushMetricExporter {
  export(metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
    const log = droppedLine("metrics");
    this.current.export(metrics, (result) => {
      log(result);
      done(result);
    });
  }

  selectAggregationTemporality?: PushMetricExporter["selectAggregationTemporality"];
  selectAggregation?: PushMetricExporter["selectAggregation"];

  constructor(live: PushMetricExporter, makeQuick: () => PushMetricExporter) {
    super(live, makeQuick);
    // Only where the exporter has them: the reader treats a defined selector as a choice.
    if (live.selectAggregationTemporality) {
      this.selectAggregationTemporality = live.selectAggregationTemporality.bind(live);
    }
    if (live.selectAggregation) this.selectAggregation = live.selectAggregation.bind(live);
  }
}
