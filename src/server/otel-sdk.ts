/**
 * Starting the OpenTelemetry Node SDK for `shell-sessions serve`: the one
 * file in the server that touches the SDK rather than the API. Everything is
 * configured by the standard `OTEL_*` variables (exporters, endpoints,
 * sampler, `OTEL_SDK_DISABLED`); no auto-instrumentation is loaded, since the
 * server makes its own spans and metrics.
 */
import { getBooleanFromEnv } from "@opentelemetry/core";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { settledWithin } from "../deadline.ts";
import { serviceNameFromEnv } from "../service-name.ts";
import { DEFAULT_SERVICE_NAME } from "./options.ts";

export interface ServerSdk {
  enabled: boolean;
  serviceName: string;
  /** Flushes and stops; never throws, never waits longer than `timeoutMs`. */
  shutdown(timeoutMs?: number): Promise<void>;
}

export function startServerSdk(): ServerSdk {
  const configured = serviceNameFromEnv();
  const serviceName = configured ?? DEFAULT_SERVICE_NAME;
  // Read as the SDK reads it: only `true` disables (`1` does not, and the SDK warns of it).
  const enabled = getBooleanFromEnv("OTEL_SDK_DISABLED") !== true;
  const sdk = new NodeSDK({
    ...(configured === undefined ? { serviceName } : {}),
    instrumentations: [],
  });
  sdk.start();
  return {
    enabled,
    serviceName,
    async shutdown(timeoutMs = 5000) {
      await settledWithin(sdk.shutdown(), timeoutMs, { unref: true });
    },
  };
}
