/** Whether the process already has an OpenTelemetry SDK: ours joins it rather than starting a second one. */
import { ProxyTracerProvider, trace } from "@opentelemetry/api";

/**
 * Whether some SDK already registered a global tracer provider. The API hands
 * out its own proxy until one is registered, whose delegate is then the
 * API's shared no-op provider, the same one a fresh proxy returns.
 */
export function globalTracerProviderRegistered(): boolean {
  const provider = trace.getTracerProvider();
  if (!(provider instanceof ProxyTracerProvider)) return true;
  return provider.getDelegate() !== new ProxyTracerProvider().getDelegate();
}
