/**
 * Who a shell belongs to: its component, type, version and adapters, from the
 * component's own options, then the instrumentation's config, then the
 * environment. Light (no OpenTelemetry): the description is written ahead
 * with the start, before the SDK loads.
 */
import { UNKNOWN_COMPONENT } from "./semconv.ts";
import type { ShellOptions } from "./types.ts";

export interface ResolvedShell {
  component: string;
  shellType: string;
  version: string | undefined;
  adapters: string[];
}

export function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== "" ? value : undefined;
}

/** A boolean environment flag: `true`/`1`/`on`/`yes` or `false`/`0`/`off`/`no`; anything else is unset. */
export function envFlag(value: string | undefined): boolean | undefined {
  const v = value?.trim().toLowerCase();
  if (v === "true" || v === "1" || v === "on" || v === "yes") return true;
  if (v === "false" || v === "0" || v === "off" || v === "no") return false;
  return undefined;
}

/** Longest key or value the SDK's OTEL_RESOURCE_ATTRIBUTES detector accepts. */
const RESOURCE_ATTRIBUTE_MAX = 255;

/**
 * `service.name` from `OTEL_RESOURCE_ATTRIBUTES`, read by the rules of the
 * SDK's own detector (`ResourceAttributesEnvDetector`): comma-separated
 * `key=value` pairs, trimmed and percent-decoded, each at most 255
 * characters, a later pair winning; any malformed pair discards the whole
 * value. Hand-written because the detector's package and the API it imports
 * cost some 40 ms on a shell's way to its first prompt, where the start is
 * written ahead with its component; a test holds it to the detector's answers.
 */
export function serviceNameFromResourceAttributes(raw: string | undefined): string | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  let name: string | undefined;
  for (const pair of raw.split(",")) {
    if (pair.trim() === "") continue;
    const parts = pair.split("=");
    if (parts.length !== 2) return undefined;
    const key = parts[0]?.trim() ?? "";
    if (key === "") return undefined;
    let decodedKey: string;
    let decodedValue: string;
    try {
      decodedKey = decodeURIComponent(key);
      decodedValue = decodeURIComponent(parts[1]?.trim() ?? "");
    } catch {
      return undefined;
    }
    if (decodedKey.length > RESOURCE_ATTRIBUTE_MAX || decodedValue.length > RESOURCE_ATTRIBUTE_MAX) return undefined;
    if (decodedKey === "service.name") name = decodedValue;
  }
  return nonEmpty(name);
}

/** The shell's description: the component's own options, then the instrumentation's, then the environment. */
export function describeShell(
  own: ShellOptions,
  config: ShellOptions,
  env: NodeJS.ProcessEnv,
  className: unknown,
): ResolvedShell {
  const adaptersFromEnv = env.SHELL_SESSIONS_ADAPTERS?.split(",")
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
  return {
    component:
      own.component ??
      config.component ??
      nonEmpty(env.SHELL_SESSIONS_COMPONENT) ??
      nonEmpty(env.OTEL_SERVICE_NAME) ??
      serviceNameFromResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES) ??
      UNKNOWN_COMPONENT,
    shellType:
      own.shellType ?? config.shellType ?? (typeof className === "string" && className ? className : "REPLServer"),
    version: own.version ?? config.version ?? nonEmpty(env.SHELL_SESSIONS_COMPONENT_VERSION),
    adapters: own.adapters ?? config.adapters ?? adaptersFromEnv ?? [],
  };
}

export function sameShell(a: ResolvedShell, b: ResolvedShell): boolean {
  return (
    a.component === b.component &&
    a.shellType === b.shellType &&
    a.version === b.version &&
    a.adapters.length === b.adapters.length &&
    a.adapters.every((x, i) => x === b.adapters[i])
  );
}
