// An application that runs its own OpenTelemetry NodeSDK before anything else
// (the exporters come from the OTEL_* environment, none in the benchmark): the
// peer of the "marginal memory" figure, with and without the register entry.
import { NodeSDK } from "@opentelemetry/sdk-node";

new NodeSDK({ serviceName: "bench-app" }).start();
