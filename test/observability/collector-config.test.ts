/**
 * otel-collector.yaml is checked against the settings the Collector's
 * components really accept (collector-components.ts, with the source of
 * each). There is no Collector binary to run `otelcol validate` with here:
 * the Collector is packaged neither for Debian nor for npm.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { distributionFor, envReferences, expandDefaults, validateCollectorConfig } from "./collector-validate.ts";

const FILE = new URL("../../otel-collector.yaml", import.meta.url);
const text = readFileSync(FILE, "utf8");
// biome-ignore lint/suspicious/noExplicitAny: a parsed YAML document; the validator is what checks its shape
type Yaml = any;
const config: Yaml = parse(expandDefaults(text));

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

  it("protects and batches every pipeline: memory_limiter first, then batch", () => {
    for (const [name, pipeline] of Object.entries<Yaml>(config.service.pipelines)) {
      assert.deepEqual(pipeline.processors, ["memory_limiter", "batch"], name);
    }
  });

  it("sends traces over OTLP and serves metrics for Prometheus", () => {
    const { traces, metrics } = config.service.pipelines;
    assert.deepEqual(traces.receivers, ["otlp"]);
    assert.deepEqual(traces.exporters, ["otlp/traces"]);
    assert.deepEqual(metrics.exporters, ["prometheus"]);
    assert.ok(config.exporters.prometheusremotewrite, "remote write is offered as the alternative");
  });

  it("keeps the debug exporter out of the pipelines, with a comment saying how to add it", () => {
    assert.ok(config.exporters.debug);
    for (const pipeline of Object.values<Yaml>(config.service.pipelines)) {
      assert.ok(!pipeline.exporters.includes("debug"));
    }
    assert.match(text, /exporters: \[otlp\/traces\] #.*add debug/);
  });

  it("has a gateway variant that balances traces by trace id", () => {
    const lb = config.exporters.loadbalancing;
    assert.equal(lb.routing_key, "traceID");
    assert.ok(lb.resolver.dns.hostname);
    assert.equal(lb.protocol.otlp.endpoint, undefined, "the resolver supplies the endpoints");
    assert.match(text, /exporters: \[otlp\/traces\] # gateway mode on the hosts: \[loadbalancing\]/);
    // The variant must validate too: swap it into the traces pipeline.
    assert.deepEqual(
      mutated((c) => {
        c.service.pipelines.traces.exporters = ["loadbalancing"];
      }),
      [],
    );
  });

  it("turns into the gateway-mode agent with the edit docs/quick-start.md gives", () => {
    const guide = readFileSync(new URL("../../docs/quick-start.md", import.meta.url), "utf8");
    const script = /sed '(s\/.+?)' "\$PKG\/otel-collector\.yaml" > otel-agent\.yaml/.exec(guide)?.[1];
    assert.ok(script, "docs/quick-start.md shows the sed command");
    // s/PATTERN/REPLACEMENT/ with `\/` and `\[` escapes; PATTERN has no other regex syntax.
    const [, pattern, replacement] = script.split(/(?<!\\)\//).map((part) => part.replace(/\\(.)/g, "$1"));
    const agentText = text.replace(pattern as string, replacement as string);
    assert.notEqual(agentText, text, "the edit changes the file");
    const agent = parse(expandDefaults(agentText));
    assert.deepEqual(agent.service.pipelines.traces.exporters, ["loadbalancing"]);
    assert.deepEqual(agent.service.pipelines.metrics.exporters, ["prometheus"]);
    assert.deepEqual(validateCollectorConfig(agent).problems, []);
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
      c.processors.batch.send_batch_max_size = 10;
      c.processors.batch.timeout = "5 seconds";
      c.service.pipelines.traces.processors = ["batch", "memory_limiter"];
      c.exporters["otlp/traces"].endpoint = "127.0.0.1";
      c.exporters["otlp/traces"].retry_on_failure.max_elapsed_time = "10s";
    });
    for (const expected of [
      "processors.memory_limiter.spike_limit_percentage: must be smaller",
      "processors.batch.send_batch_max_size: must be greater",
      "processors.batch.timeout: must be a Go duration",
      "memory_limiter must come first",
      "exporters.otlp/traces.endpoint: must be host:port",
      "retry_on_failure.max_elapsed_time: must not be less than max_interval",
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
