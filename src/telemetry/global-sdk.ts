/** Whether the process already has an OpenTelemetry SDK: ours joins it rather than starting a second one. */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
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

/** Where every copy of `@opentelemetry/api` 1.x keeps the process's providers (the API's own, stable key). */
const API_REGISTRY = Symbol.for("opentelemetry.js.api.1");

/** The version of the `@opentelemetry/api` copy this package imports, from its package.json. */
function ownApiVersion(): string | undefined {
  try {
    let dir = dirname(createRequire(import.meta.url).resolve("@opentelemetry/api"));
    for (let parent = dirname(dir); parent !== dir; dir = parent, parent = dirname(dir)) {
      const manifest = join(dir, "package.json");
      if (!existsSync(manifest)) continue;
      const { name, version } = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
      if (name === "@opentelemetry/api") return version;
    }
  } catch {
    // A bundled or unusual layout: judged by the providers alone, below.
  }
  return undefined;
}

/**
 * The version of another `@opentelemetry/api` copy that owns the process's
 * registry where ours cannot use it: an app on an older stack (api 1.9 with
 * SDK 2.x) while this package's SDK needs api 1.10. The API shares providers
 * only between compatible copies and registers new ones only when the
 * versions are equal, so neither joining that SDK nor starting ours globally
 * can work. Undefined when the registry is ours to use, or there is none.
 */
export function foreignApiVersion(): string | undefined {
  const registry = (globalThis as Record<symbol, { version?: unknown; trace?: unknown } | undefined>)[API_REGISTRY];
  if (registry === undefined || typeof registry.version !== "string") return undefined;
  const own = ownApiVersion();
  if (own !== undefined) return registry.version === own ? undefined : registry.version;
  return registry.trace !== undefined && !globalTracerProviderRegistered() ? registry.version : undefined;
}
