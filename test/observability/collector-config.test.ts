/**
 * otel-collector.yaml, and the agent and gateway overlays merged onto it as
 * the Collector merges several `--config` files, are checked against the
 * settings the Collector's components really accept (collector-components.ts,
 * with the source of each). There is no Collector binary to run `otelcol
 * validate` with here: the Collector is packaged neither for Debian nor for npm.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse } from "yaml";
import {
  distributionFor,
  envReferences,
  expandDefaults,
  mergeConfigs,
  validateCollectorConfig,
} from "./collector-validate.ts";

const read = (name: string) => readFileSync(new URL(`../../${name}`, import.meta.url), "utf8");
const text = read("otel-collector.yaml");
// biome-ignore lint/suspicious/noExplicitAny: a parsed YAML document; the validator is what checks its shape
type Yaml = any;
const config: Yaml = parse(expandDefaults(text));

/** An overlay merged onto otel-collector.yaml, with `env` standing for the variables that have no default. */
function withOverlay(name: string, env: Record<string, string>): Yaml {
  let overlay = read(name);
  for (const [key, value] of Object.entries(env)) overlay = overlay.replaceAll(`\${env:${key}}`, value);
  return mergeConfigs(config, parse(expandDefaults(overlay)));
}

function mutated(change: (c: Yaml) => void): string[] {
  const copy = structuredClone(config);
  change(copy);
  return validateCollectorConfig(copy).problems;
}

describe("otel-collector.yaml", () => {
  it("uses only components and settings the Collector accepts, with valid values", () => {
    const { problems } = validateCollectorConfig(config);
    assert.deepEqual(problems, []);
  });

  it("gives every environment variable a default, so it runs as is", () => {
    const refs = envReferences(text);
    assert.ok(refs.length > 0);
    for (const { name, fallback } of refs)
      assert.ok(fallback !== undefined && fallback !== "", `${name} has no default`);
  });

  it("listens for OTLP on loopback at the SDKs' default ports", () => {
    const { grpc, http } = config.receivers.otlp.protocols;
    assert.equal(grpc.endpoint, "127.0.0.1:4317");
    assert.equal(http.endpoint, "127.0.0.1:4318");
    assert.match(config.extensions.health_check.endpoint, /^127\.0\.0\.1:/);
    assert.match(config.exporters.prometheus.endpoint, /^127\.0\.0\.1:/);
    for (const reader of config.service.telemetry.metrics.readers) {
      assert.equal(reader.pull.exporter.prometheus.host, "127.0.0.1");
    }
  });

  it("protects every pipeline with memory_limiter, and batches in the trace exporter's sending queue", () => {
    for (const [name, pipeline] of Object.entries<Yaml>(config.service.pipelines)) {
      assert.deepEqual(pipeline.processors, ["memory_limiter"], name);
    }
    assert.equal(config.processors.batch, undefined, "no batch processor: batching is the exporters'");
    assert.deepEqual(config.exporters["otlp_grpc/traces"].sending_queue.batch, {
      flush_timeout: "5s",
      min_size: 1024,
      max_size: 2048,
    });
  });

  it("sends traces over OTLP and serves metrics for Prometheus, names said explicitly", () => {
    const { traces, metrics } = config.service.pipelines;
    assert.deepEqual(traces.receivers, ["otlp"]);
    assert.deepEqual(traces.exporters, ["otlp_grpc/traces"]);
    assert.deepEqual(metrics.exporters, ["prometheus"]);
    // The dashboards and alert rules read shell_emissions_total, *_bucket, *_ratio: classic names with suffixes.
    assert.equal(config.exporters.prometheus.translation_strategy, "UnderscoreEscapingWithSuffixes");
    assert.ok(config.exporters.prometheus_remote_write, "remote write is offered as the alternative");
  });

  it("uses current component names: a deprecated alias is found", () => {
    const problems = mutated((c) => {
      c.exporters["otlp/traces"] = c.exporters["otlp_grpc/traces"];
    });
    assert.ok(
      problems.some((p) => p.includes('exporters.otlp/traces: "otlp" is a deprecated alias')),
      `${problems}`,
    );
  });

  it("keeps the debug exporter out of the pipelines, with a comment saying how to add it", () => {
    assert.ok(config.exporters.debug);
    for (const pipeline of Object.values<Yaml>(config.service.pipelines)) {
      assert.ok(!pipeline.exporters.includes("debug"));
    }
    assert.match(text, /exporters: \[otlp_grpc\/traces\] #.*add debug/);
  });

  it("on every host of many, the agent overlay sends traces to the gateways by trace id, with the token", () => {
    const agent = withOverlay("otel-collector-agent.yaml", { COLLECTOR_GATEWAY_TOKEN: "t0ken" });
    assert.deepEqual(validateCollectorConfig(agent).problems, []);
    assert.deepEqual(agent.service.pipelines.traces.exporters, ["load_balancing"]);
    assert.deepEqual(agent.service.pipelines.metrics.exporters, ["prometheus"], "metrics stay on the host");
    const lb = agent.exporters.load_balancing;
    assert.equal(lb.routing_key, "traceID");
    assert.ok(lb.resolver.dns.hostname);
    assert.equal(lb.protocol.otlp.endpoint, undefined, "the resolver supplies the endpoints");
    assert.equal(agent.extensions[lb.protocol.otlp.auth.authenticator].token, "t0ken");
    assert.deepEqual(agent.receivers.otlp.protocols.grpc.endpoint, "127.0.0.1:4317", "still loopback for the shells");
  });

  it("the gateway overlay listens on a reachable address and refuses pushes without the token", () => {
    const gateway = withOverlay("otel-collector-gateway.yaml", { COLLECTOR_GATEWAY_TOKEN: "t0ken" });
    assert.deepEqual(validateCollectorConfig(gateway).problems, []);
    const { grpc, http } = gateway.receivers.otlp.protocols;
    assert.equal(grpc.endpoint, "0.0.0.0:4317");
    assert.equal(http.endpoint, "0.0.0.0:4318");
    for (const protocol of [grpc, http]) {
      assert.equal(gateway.extensions[protocol.auth.authenticator].token, "t0ken");
    }
    assert.deepEqual(gateway.service.pipelines.traces.exporters, ["otlp_grpc/traces"]);
  });

  it("neither overlay runs without its token, and an authenticator must be started", () => {
    for (const name of ["otel-collector-agent.yaml", "otel-collector-gateway.yaml"]) {
      assert.match(read(name), /\$\{env:COLLECTOR_GATEWAY_TOKEN\}/, `${name} requires the token, with no default`);
      const unset = withOverlay(name, { COLLECTOR_GATEWAY_TOKEN: "" });
      assert.ok(
        validateCollectorConfig(unset).problems.some((p) => p.endsWith("no bearer token provided")),
        `${name} without a token`,
      );
      const unstarted = withOverlay(name, { COLLECTOR_GATEWAY_TOKEN: "t0ken" });
      unstarted.service.extensions = ["health_check"];
      assert.ok(
        validateCollectorConfig(unstarted).problems.some((p) => p.includes("not listed in service.extensions")),
        name,
      );
    }
  });

  it("docs/quick-start.md runs each mode as the base file plus its overlay", () => {
    const guide = read("docs/quick-start.md");
    for (const overlay of ["otel-collector-agent.yaml", "otel-collector-gateway.yaml"]) {
      assert.match(
        guide,
        new RegExp(
          `otelcol-contrib --config "\\$PKG/otel-collector\\.yaml" --config "\\$PKG/${overlay.replace(".", "\\.")}"`,
        ),
        overlay,
      );
    }
  });

  it("says which distribution runs it", () => {
    const { defined } = validateCollectorConfig(config);
    assert.equal(distributionFor(defined), "contrib");
    assert.match(text, /otelcol-contrib --config otel-collector\.yaml/);
  });
});

describe("the Collector configuration check", () => {
  it("finds a misspelled setting", () => {
    const problems = mutated((c) => {
      c.processors.memory_limiter.limit_mb = 512;
    });
    assert.ok(problems.some((p) => p.startsWith("processors.memory_limiter.limit_mb: not a setting")));
  });

  it("finds an unknown component type", () => {
    const problems = mutated((c) => {
      c.exporters.jaeger = { endpoint: "127.0.0.1:14250" };
    });
    assert.ok(problems.some((p) => p.startsWith("exporters.jaeger: unknown component type")));
  });

  it("finds a component in a pipeline of a signal it does not support", () => {
    const problems = mutated((c) => {
      c.service.pipelines.traces.exporters.push("prometheus");
    });
    assert.ok(problems.some((p) => p.includes("prometheus does not support traces")));
  });

  it("finds a pipeline that names an undefined component", () => {
    const problems = mutated((c) => {
      c.service.pipelines.metrics.receivers.push("prometheus");
    });
    assert.ok(problems.some((p) => p.includes("prometheus is not defined under receivers")));
  });

  it("finds values the components' own validation refuses", () => {
    const problems = mutated((c) => {
      c.processors.memory_limiter.spike_limit_percentage = 90;
      c.processors.batch = { send_batch_size: 100, send_batch_max_size: 10, timeout: "5 seconds" };
      c.service.pipelines.traces.processors = ["batch", "memory_limiter"];
      const traces = c.exporters["otlp_grpc/traces"];
      traces.endpoint = "127.0.0.1";
      traces.retry_on_failure.max_elapsed_time = "10s";
      traces.sending_queue.batch = { flush_timeout: "0s", min_size: 4096, max_size: 2048 };
      traces.sending_queue.queue_size = 1000;
    });
    for (const expected of [
      "processors.memory_limiter.spike_limit_percentage: must be smaller",
      "processors.batch.send_batch_max_size: must be greater",
      "processors.batch.timeout: must be a Go duration",
      "memory_limiter must come first",
      "exporters.otlp_grpc/traces.endpoint: must be host:port",
      "retry_on_failure.max_elapsed_time: must not be less than max_interval",
      "sending_queue.batch.flush_timeout: must be a non-zero duration",
      "sending_queue.batch.max_size: must be greater than or equal to min_size",
      "sending_queue.batch.min_size: must not be greater than sending_queue.queue_size",
    ]) {
      assert.ok(
        problems.some((p) => p.includes(expected)),
        `expected a problem containing "${expected}" in ${JSON.stringify(problems)}`,
      );
    }
  });

  it("finds an environment reference without a default", () => {
    const doc = parse(expandDefaults(text.replace(`\${env:COLLECTOR_HEALTH_ENDPOINT:-127.0.0.1:13133}`, `\${env:X}`)));
    const { problems } = validateCollectorConfig(doc);
    assert.ok(
      problems.some((p) => p.startsWith("extensions.health_check.endpoint: refers to an environment variable")),
    );
  });
});
