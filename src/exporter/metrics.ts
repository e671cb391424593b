/**
 * Self-observability of delivery through the OTel Metrics API: emission
 * latency and outcomes, circuit state, spool depth, the MCP client's call
 * duration, and the semantic-convention exporter metrics.
 *
 * The meter is looked up on first use and again whenever the global meter
 * provider changes: delivery is often created before the SDK registers its
 * provider, and instruments from the no-op provider would record nothing.
 */
import { type Attributes, type Meter, type MeterProvider, metrics } from "@opentelemetry/api";
import {
  ATTR_ERROR_TYPE,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_MCP_METHOD_NAME,
  ATTR_OTEL_COMPONENT_NAME,
  ATTR_OTEL_COMPONENT_TYPE,
  ATTR_SHELL_CIRCUIT_STATE,
  ATTR_SHELL_EMISSION_OUTCOME,
  ATTR_SHELL_EVENT_TYPE,
  CIRCUIT_STATES,
  type EmissionOutcome,
  METRIC_MCP_CLIENT_OPERATION_DURATION,
  METRIC_OTEL_SDK_EXPORTER_OPERATION_DURATION,
  METRIC_OTEL_SDK_EXPORTER_SPAN_EXPORTED,
  METRIC_OTEL_SDK_EXPORTER_SPAN_INFLIGHT,
  METRIC_SHELL_EMISSION_DURATION,
  METRIC_SHELL_EMISSIONS,
  METRIC_SHELL_EXPORTER_CIRCUIT_STATE,
  METRIC_SHELL_SPOOL_DEPTH,
  METRIC_SHELL_SPOOL_LOST,
  SCOPE_NAME,
} from "../semconv.ts";
import type { CircuitState } from "./breaker.ts";
import { CLIENT_INFO } from "./client.ts";
import { spoolLostEvents } from "./spool.ts";

/** Our value of `otel.component.type` (the semantic conventions allow custom exporter types). */
export const COMPONENT_TYPE = "mcp_session_exporter";
export type EventType = "session_start" | "session_end" | "heartbeat";

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

let instances = 0;

interface Instruments {
  provider: MeterProvider;
  emissionDuration: ReturnType<Meter["createHistogram"]>;
  emissions: ReturnType<Meter["createCounter"]>;
  operationDuration: ReturnType<Meter["createHistogram"]>;
  exported: ReturnType<Meter["createCounter"]>;
  inflight: ReturnType<Meter["createUpDownCounter"]>;
  mcpDuration: ReturnType<Meter["createHistogram"]>;
}

export interface MetricsSources {
  circuitState: () => CircuitState;
  /** Last known number of events waiting in the spool (no database read at collection time). */
  spoolDepth: () => number;
}

/** The instruments recorded to synchronously, from `meter` of `provider`. */
function createInstruments(meter: Meter, provider: MeterProvider): Instruments {
  return {
    provider,
    emissionDuration: meter.createHistogram(METRIC_SHELL_EMISSION_DURATION, {
      description: "Time to deliver a session event to the tracker, from first attempt to final outcome",
      unit: "s",
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS },
    }),
    emissions: meter.createCounter(METRIC_SHELL_EMISSIONS, {
      description: "Session event emissions by outcome",
      unit: "{event}",
    }),
    operationDuration: meter.createHistogram(METRIC_OTEL_SDK_EXPORTER_OPERATION_DURATION, {
      description: "Duration of one export operation (one tracker call)",
      unit: "s",
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS },
    }),
    exported: meter.createCounter(METRIC_OTEL_SDK_EXPORTER_SPAN_EXPORTED, {
      description: "Session spans whose events were exported, or whose export finally failed (with error.type)",
      unit: "{span}",
    }),
    inflight: meter.createUpDownCounter(METRIC_OTEL_SDK_EXPORTER_SPAN_INFLIGHT, {
      description: "Session span events being exported right now",
      unit: "{span}",
    }),
    mcpDuration: meter.createHistogram(METRIC_MCP_CLIENT_OPERATION_DURATION, {
      description: "Duration of MCP requests sent by the session exporter",
      unit: "s",
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS },
    }),
  };
}

export class DeliveryMetrics {
  readonly #fixedProvider: MeterProvider | undefined;
  readonly #sources: MetricsSources;
  readonly #component: Attributes;
  #instruments: Instruments | undefined;

  constructor(sources: MetricsSources, meterProvider?: MeterProvider) {
    this.#sources = sources;
    this.#fixedProvider = meterProvider;
    this.#component = {
      [ATTR_OTEL_COMPONENT_TYPE]: COMPONENT_TYPE,
      [ATTR_OTEL_COMPONENT_NAME]: `${COMPONENT_TYPE}/${instances++}`,
    };
  }

  #get(): Instruments {
    const provider = this.#fixedProvider ?? metrics.getMeterProvider();
    if (this.#instruments?.provider === provider) return this.#instruments;
    const meter = provider.getMeter(SCOPE_NAME, CLIENT_INFO.version);
    this.#observeGauges(meter);
    this.#instruments = createInstruments(meter, provider);
    return this.#instruments;
  }

  /** The gauges, read from their sources at collection time. */
  #observeGauges(meter: Meter): void {
    // One series per state, 1 for the current one (as semconv's `hw.status`): an enum coded as a number
    // would average and sum into nonsense, and its meaning would live only in a description.
    const circuit = meter.createObservableGauge(METRIC_SHELL_EXPORTER_CIRCUIT_STATE, {
      description:
        "State of the circuit breaker around tracker calls: 1 on the series of the current shell.circuit.state, 0 on the others",
      unit: "1",
    });
    circuit.addCallback((result) => {
      const current = this.#sources.circuitState();
      for (const state of CIRCUIT_STATES) {
        result.observe(state === current ? 1 : 0, { ...this.#component, [ATTR_SHELL_CIRCUIT_STATE]: state });
      }
    });
    const depth = meter.createObservableGauge(METRIC_SHELL_SPOOL_DEPTH, {
      description: "Session events waiting in the local spool for delivery",
      unit: "{event}",
    });
    depth.addCallback((result) => result.observe(this.#sources.spoolDepth(), this.#component));
    // The spool file's own count, so losses no emission saw (rows a damaged file could not give back, losses
    // counted by other processes) show too. Read from what the spool last read: no database read here.
    const lost = meter.createObservableGauge(METRIC_SHELL_SPOOL_LOST, {
      description:
        "Session events the local spool counts as lost: refused by its bounds, not writable (full disk), or unreadable in a damaged spool file",
      unit: "{event}",
    });
    lost.addCallback((result) => result.observe(spoolLostEvents(), this.#component));
  }

  /** One outcome of one event; `seconds` when the outcome ends a delivery attempt sequence. */
  emission(eventType: EventType, outcome: EmissionOutcome, seconds?: number): void {
    const attrs = { [ATTR_SHELL_EVENT_TYPE]: eventType, [ATTR_SHELL_EMISSION_OUTCOME]: outcome };
    const i = this.#get();
    i.emissions.add(1, attrs);
    if (seconds !== undefined) i.emissionDuration.record(seconds, attrs);
  }

  /** One tracker call (export operation). */
  operation(tool: string, seconds: number, errorType?: string): void {
    const i = this.#get();
    const error = errorType !== undefined ? { [ATTR_ERROR_TYPE]: errorType } : {};
    i.operationDuration.record(seconds, { ...this.#component, ...error });
    i.mcpDuration.record(seconds, { [ATTR_MCP_METHOD_NAME]: "tools/call", [ATTR_GEN_AI_TOOL_NAME]: tool, ...error });
  }

  /** A span's event left the exporter: delivered, or given up on (spooled, rejected, lost) with `errorType`. */
  exported(errorType?: string): void {
    this.#get().exported.add(1, {
      ...this.#component,
      ...(errorType !== undefined ? { [ATTR_ERROR_TYPE]: errorType } : {}),
    });
  }

  /** Events sent and not yet answered for: up by the events a call carries, down as they are. */
  inflight(delta: number): void {
    this.#get().inflight.add(delta, this.#component);
  }
}
