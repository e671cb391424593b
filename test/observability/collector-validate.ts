/**
 * Checks a parsed Collector configuration against collector-components.ts:
 * known component types, only the settings each accepts, value types, the
 * Validate() rules of the components we use, and pipelines that reference
 * defined components of the right signal. Returns every problem found,
 * each naming the path of the offending key.
 */
import {
  type Component,
  DEPRECATED_TYPES,
  EXPORTERS,
  EXTENSIONS,
  type Leaf,
  PROCESSORS,
  RECEIVERS,
  SERVICE_TELEMETRY,
  type Setting,
  type Settings,
  type Signal,
} from "./collector-components.ts";

const ENV_REFERENCE = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
const COMPONENT_ID = /^([a-z][a-z0-9_]*)(\/[^/\s]+)?$/;
const SIGNALS: readonly Signal[] = ["traces", "metrics", "logs"];

/** The environment variables a config refers to with `${env:NAME}` or `${env:NAME:-default}`. */
export function envReferences(text: string): { name: string; fallback: string | undefined }[] {
  return [...text.matchAll(ENV_REFERENCE)].map((m) => ({ name: m[1] as string, fallback: m[2] }));
}

/**
 * Expands `${env:NAME:-default}` the way the Collector does when NAME is
 * unset (the file must run as is); a reference without default is left for
 * the validator to report.
 */
export function expandDefaults(text: string): string {
  return text.replace(ENV_REFERENCE, (whole, _name: string, fallback: string | undefined) => fallback ?? whole);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isLeaf(setting: Setting): setting is Leaf {
  return typeof setting === "string" || "oneOf" in setting;
}

function checkLeaf(path: string, leaf: Leaf, value: unknown, problems: string[]): void {
  const fail = (what: string) => problems.push(`${path}: ${what} (got ${JSON.stringify(value)})`);
  if (typeof value === "string" && value.includes("${")) {
    fail("refers to an environment variable without a default, so the file does not run as is");
    return;
  }
  if (typeof leaf === "object") {
    if (typeof value !== "string" || !leaf.oneOf.includes(value)) fail(`must be one of ${leaf.oneOf.join(", ")}`);
    return;
  }
  switch (leaf) {
    case "string":
      if (typeof value !== "string") fail("must be a string");
      break;
    case "bool":
      if (typeof value !== "boolean") fail("must be true or false");
      break;
    case "uint":
      if (!Number.isInteger(value) || (value as number) < 0) fail("must be a whole number");
      break;
    case "number":
      if (typeof value !== "number") fail("must be a number");
      break;
    case "percent":
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 100) fail("must be 0..100");
      break;
    case "duration":
      if (typeof value !== "string" || !GO_DURATION.test(value)) fail("must be a Go duration such as 5s or 1m30s");
      break;
    case "hostport": {
      const m = typeof value === "string" ? /^(\[[0-9a-f:]+\]|[^:\s]*):(\d{1,5})$/i.exec(value) : null;
      if (!m || Number(m[2]) > 65535) fail("must be host:port");
      break;
    }
    case "url":
      if (typeof value !== "string" || !URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol))
        fail("must be an http(s) URL");
      break;
    case "strings":
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string" && typeof v !== "number"))
        fail("must be a list");
      break;
    case "stringmap":
      if (!isObject(value) || Object.values(value).some((v) => typeof v !== "string")) fail("must be a map of strings");
      break;
  }
}

function checkSettings(path: string, schema: Settings, value: unknown, problems: string[]): void {
  // `otlp: {}` and a bare `otlp:` (null) both mean "all defaults".
  if (value === null || value === undefined) return;
  if (!isObject(value)) {
    problems.push(`${path}: must be a map of settings`);
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    const setting = schema[key];
    const childPath = `${path}.${key}`;
    if (setting === undefined) {
      problems.push(`${childPath}: not a setting this component accepts (accepted: ${Object.keys(schema).join(", ")})`);
    } else if (isLeaf(setting)) {
      checkLeaf(childPath, setting, child, problems);
    } else if ("list" in setting) {
      if (!Array.isArray(child)) problems.push(`${childPath}: must be a list`);
      else
        for (const [i, item] of child.entries())
          checkSettings(`${childPath}[${i}]`, setting.list as Settings, item, problems);
    } else {
      checkSettings(childPath, setting as Settings, child, problems);
    }
  }
}

/** The Validate() rules of the components in use that a key check cannot see. */
function checkRules(
  kind: string,
  type: string,
  path: string,
  config: Record<string, unknown>,
  problems: string[],
): void {
  const seconds = (v: unknown): number | undefined => {
    if (typeof v !== "string" || !GO_DURATION.test(v)) return undefined;
    const unit: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
    let total = 0;
    for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g))
      total += Number(m[1]) * (unit[m[2] as string] ?? 0);
    return total;
  };
  if (kind === "processors" && type === "memory_limiter") {
    const interval = seconds(config.check_interval);
    if (interval === undefined || interval <= 0) problems.push(`${path}.check_interval: must be greater than zero`);
    const limit = (config.limit_mib as number | undefined) ?? 0;
    const percent = (config.limit_percentage as number | undefined) ?? 0;
    if (limit === 0 && percent === 0) problems.push(`${path}: limit_mib or limit_percentage must be greater than zero`);
    if (limit > 0 && limit <= ((config.spike_limit_mib as number | undefined) ?? 0))
      problems.push(`${path}.spike_limit_mib: must be smaller than limit_mib`);
    if (percent > 0 && percent <= ((config.spike_limit_percentage as number | undefined) ?? 0))
      problems.push(`${path}.spike_limit_percentage: must be smaller than limit_percentage`);
  }
  if (kind === "processors" && type === "batch") {
    const max = (config.send_batch_max_size as number | undefined) ?? 0;
    if (max > 0 && max < ((config.send_batch_size as number | undefined) ?? 0))
      problems.push(`${path}.send_batch_max_size: must be greater than or equal to send_batch_size`);
  }
  if (kind === "exporters" && type === "otlp_grpc" && typeof config.endpoint !== "string")
    problems.push(`${path}.endpoint: required`);
  const retryConfig = config.retry_on_failure;
  if (kind === "exporters" && isObject(retryConfig) && retryConfig.enabled !== false) {
    const elapsed = seconds(retryConfig.max_elapsed_time);
    for (const other of ["initial_interval", "max_interval"]) {
      const v = seconds(retryConfig[other]);
      if (elapsed !== undefined && elapsed > 0 && v !== undefined && elapsed < v)
        problems.push(`${path}.retry_on_failure.max_elapsed_time: must not be less than ${other}`);
    }
  }
  if (kind === "exporters" && type === "load_balancing") {
    const resolver = config.resolver;
    if (!isObject(resolver) || !(isObject(resolver.static) || isObject(resolver.dns) || isObject(resolver.k8s)))
      problems.push(`${path}.resolver: needs static, dns or k8s`);
  }
  if (kind === "extensions" && type === "health_check" && typeof config.endpoint !== "string")
    problems.push(`${path}.endpoint: required`);
  if (kind === "extensions" && type === "bearertokenauth") {
    const tokens = Array.isArray(config.tokens) ? config.tokens.length : 0;
    if (!config.token && tokens === 0 && !config.filename) problems.push(`${path}: no bearer token provided`);
    if (config.token && tokens > 0) problems.push(`${path}: either tokens or token should be provided, not both`);
  }
  const queue = kind === "exporters" ? sendingQueueOf(config) : undefined;
  if (queue !== undefined && isObject(queue.batch)) {
    const batch = queue.batch;
    const flush = seconds(batch.flush_timeout);
    if (batch.flush_timeout !== undefined && (flush === undefined || flush <= 0))
      problems.push(`${path}.sending_queue.batch.flush_timeout: must be a non-zero duration`);
    const min = (batch.min_size as number | undefined) ?? 8192;
    const max = (batch.max_size as number | undefined) ?? 0;
    if (max > 0 && max < min)
      problems.push(`${path}.sending_queue.batch.max_size: must be greater than or equal to min_size`);
    const queueSizer = (queue.sizer as string | undefined) ?? "requests";
    const batchSizer = (batch.sizer as string | undefined) ?? queueSizer;
    const queueSize = (queue.queue_size as number | undefined) ?? 1000;
    if (batchSizer === queueSizer && min > queueSize)
      problems.push(`${path}.sending_queue.batch.min_size: must not be greater than sending_queue.queue_size`);
  }
}

/** An exporter's sending queue: its own, or that of the OTLP exporter a load-balancing exporter wraps. */
function sendingQueueOf(config: Record<string, unknown>): Record<string, unknown> | undefined {
  if (isObject(config.sending_queue)) return config.sending_queue;
  const protocol = config.protocol;
  if (isObject(protocol) && isObject(protocol.otlp) && isObject(protocol.otlp.sending_queue))
    return protocol.otlp.sending_queue;
  return undefined;
}

const SECTIONS: Record<string, Record<string, Component>> = {
  receivers: RECEIVERS,
  processors: PROCESSORS,
  exporters: EXPORTERS,
  extensions: EXTENSIONS,
};

export interface Validation {
  problems: string[];
  /** Component ids per section, as defined. */
  defined: Record<string, string[]>;
}

export function validateCollectorConfig(doc: unknown): Validation {
  const problems: string[] = [];
  const defined: Record<string, string[]> = { receivers: [], processors: [], exporters: [], extensions: [] };
  if (!isObject(doc)) return { problems: ["the configuration must be a YAML map"], defined };
  for (const key of Object.keys(doc)) {
    if (!(key in SECTIONS) && key !== "service" && key !== "connectors")
      problems.push(`${key}: not a top-level section`);
  }
  const typeOf = (section: string, id: string): Component | undefined => {
    const m = COMPONENT_ID.exec(id);
    return m ? SECTIONS[section]?.[m[1] as string] : undefined;
  };

  for (const [section, known] of Object.entries(SECTIONS)) {
    const entries = doc[section];
    if (entries === undefined) continue;
    if (!isObject(entries)) {
      problems.push(`${section}: must be a map of components`);
      continue;
    }
    for (const [id, config] of Object.entries(entries)) {
      defined[section]?.push(id);
      const m = COMPONENT_ID.exec(id);
      // The renames are of exporters: the `otlp` receiver keeps its name (it serves gRPC and HTTP).
      const renamed = m && section === "exporters" ? DEPRECATED_TYPES[m[1] as string] : undefined;
      if (renamed !== undefined) {
        problems.push(`${section}.${id}: "${m?.[1]}" is a deprecated alias; the component is now "${renamed}"`);
        continue;
      }
      const component = m ? known[m[1] as string] : undefined;
      if (!m || component === undefined) {
        problems.push(`${section}.${id}: unknown component type (known here: ${Object.keys(known).join(", ")})`);
        continue;
      }
      checkSettings(`${section}.${id}`, component.settings, config, problems);
      if (isObject(config)) checkRules(section, m[1] as string, `${section}.${id}`, config, problems);
    }
  }

  const service = doc.service;
  if (!isObject(service)) {
    problems.push("service: required");
    return { problems, defined };
  }
  for (const key of Object.keys(service)) {
    if (!["extensions", "pipelines", "telemetry"].includes(key)) problems.push(`service.${key}: not a service setting`);
  }
  for (const ext of (service.extensions as unknown[] | undefined) ?? []) {
    if (typeof ext !== "string" || !defined.extensions?.includes(ext))
      problems.push(`service.extensions: ${String(ext)} is not defined under extensions`);
  }
  checkSettings("service.telemetry", SERVICE_TELEMETRY, service.telemetry, problems);
  // An authenticator is an extension that must be defined and started (listed in service.extensions).
  for (const { path, id } of authenticators(doc)) {
    if (!defined.extensions?.includes(id)) problems.push(`${path}: ${id} is not defined under extensions`);
    else if (!((service.extensions as unknown[] | undefined) ?? []).includes(id))
      problems.push(`${path}: ${id} is not listed in service.extensions, so it never starts`);
  }

  const pipelines = service.pipelines;
  if (!isObject(pipelines) || Object.keys(pipelines).length === 0) {
    problems.push("service.pipelines: at least one pipeline is required");
    return { problems, defined };
  }
  for (const [name, pipeline] of Object.entries(pipelines)) {
    const signal = name.split("/")[0] as Signal;
    const path = `service.pipelines.${name}`;
    if (!SIGNALS.includes(signal)) {
      problems.push(`${path}: the name must start with traces, metrics or logs`);
      continue;
    }
    if (!isObject(pipeline)) {
      problems.push(`${path}: must be a map`);
      continue;
    }
    for (const key of Object.keys(pipeline)) {
      if (!["receivers", "processors", "exporters"].includes(key))
        problems.push(`${path}.${key}: not a pipeline setting`);
    }
    for (const section of ["receivers", "processors", "exporters"] as const) {
      const ids = pipeline[section] ?? [];
      if (!Array.isArray(ids)) {
        problems.push(`${path}.${section}: must be a list`);
        continue;
      }
      if (section !== "processors" && ids.length === 0) problems.push(`${path}.${section}: at least one is required`);
      for (const id of ids) {
        if (typeof id !== "string" || !defined[section]?.includes(id)) {
          problems.push(`${path}.${section}: ${String(id)} is not defined under ${section}`);
          continue;
        }
        const component = typeOf(section, id);
        if (component && !component.signals.includes(signal))
          problems.push(`${path}.${section}: ${id} does not support ${signal} (only ${component.signals.join(", ")})`);
      }
      if (section === "processors" && ids.length > 0 && ids.includes("memory_limiter") && ids[0] !== "memory_limiter")
        problems.push(`${path}.processors: memory_limiter must come first, before anything holds data`);
    }
  }
  return { problems, defined };
}

/** Every `auth.authenticator` under receivers and exporters, with where it is. */
function authenticators(doc: Record<string, unknown>): { path: string; id: string }[] {
  const found: { path: string; id: string }[] = [];
  const walk = (path: string, value: unknown): void => {
    if (!isObject(value)) return;
    for (const [key, child] of Object.entries(value)) {
      if (key === "auth" && isObject(child) && typeof child.authenticator === "string")
        found.push({ path: `${path}.auth.authenticator`, id: child.authenticator });
      else walk(`${path}.${key}`, child);
    }
  };
  for (const section of ["receivers", "exporters"]) walk(section, doc[section]);
  return found;
}

/**
 * What the Collector runs when given several `--config` files: maps merge key
 * by key, a later file's value wins, and lists are replaced whole (confmap's
 * default merge).
 */
export function mergeConfigs(...docs: unknown[]): unknown {
  const merge = (a: unknown, b: unknown): unknown => {
    if (!isObject(a) || !isObject(b)) return structuredClone(b);
    const out: Record<string, unknown> = structuredClone(a);
    for (const [key, value] of Object.entries(b))
      out[key] = key in out ? merge(out[key], value) : structuredClone(value);
    return out;
  };
  return docs.reduce((merged, doc) => merge(merged, doc));
}

/** The distributions needed to run a config: "contrib" when any component is contrib-only. */
export function distributionFor(defined: Record<string, string[]>): "core" | "contrib" {
  for (const [section, ids] of Object.entries(defined)) {
    for (const id of ids) {
      const type = id.split("/")[0] as string;
      if (SECTIONS[section]?.[type]?.distribution === "contrib") return "contrib";
    }
  }
  return "core";
}
