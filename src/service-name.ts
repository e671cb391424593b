/**
 * The `service.name` the environment gives, read by the SDK's own detectors
 * (`OTEL_SERVICE_NAME` first, then `OTEL_RESOURCE_ATTRIBUTES`, percent-decoded),
 * so that the name this package prints or defaults to is the one the
 * telemetry carries. Shared by shells and the tracker.
 */
import { resourceAttributesEnvDetector, serviceNameEnvDetector } from "@opentelemetry/resources";

export function serviceNameFromEnv(): string | undefined {
  for (const detector of [serviceNameEnvDetector, resourceAttributesEnvDetector]) {
    const name = detector.detect().attributes?.["service.name"];
    if (typeof name === "string" && name !== "") return name;
  }
  return undefined;
}
