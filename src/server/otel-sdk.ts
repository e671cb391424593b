/**
 * Starting the OpenTelemetry Node SDK for `shell-sessions serve`: the one
 * file in the server that touches the SDK rather than the API. Everything is
 * configured by the standard `OTEL_*` variables (exporters, endpoints,
 * sampler, `OTEL_SDK_DISABLED`); no auto-instrumentation is loaded, since the
 * server makes its own spans and metrics.
 */
import { NodeSDK } from "@opentelemetry/sdk-node";
import { settledWithin } from "../deadline.ts";
import { DEFAULT_SERVICE_NAME } from "./options.ts";

export interface ServerSdk {
  enabled: boolean;
  serviceName: string;
  /** Flushes and stops; never throws, never waits longer than `timeoutMs`. */
  shutdown(timeoutMs?: number): Promise<void>;
}

function serviceNameFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  if (env.OTEL_SERVICE_NAME) return env.OTEL_SERVICE_NAME;
  const fromAttributes = /(?:^|,)\s*service\.name\s*=\s*([^,]+)/.exec(env.OTEL_RESOURCE_ATTRIBUTES ?? "");
  return fromAttributes?.[1]?.trim();
}

export function startServerSdk(env: NodeJS.ProcessEnv = process.env): ServerSdk {
  const configured = serviceNameFromEnv(env);
  const serviceName = configured ?? DEFAULT_SERVICE_NAME;
  const enabled = !/^(true|1)$/i.test(env.OTEL_SDK_DISABLED ?? "");
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
