/**
 * Against the live system of live-stack.ts (a tracker, a demo shell, an
 * admin app started with the register entry, the same app with its tracker
 * down, a killed shell), scraped by Debian's Prometheus and exporting OTLP
 * to a test receiver:
 *
 *   - every dashboard query and every alert rule evaluates and returns series;
 *   - the alerts fire for the faults the stack created;
 *   - docs/monitoring.md's metrics reference is what the code emits
 *     (names, types, units, attributes);
 *   - the register entry's spans and metrics arrive over OTLP/HTTP.
 *
 * Needs `npm run build` (npm test does it) and Debian's prometheus package.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { SCOPE_NAME, SPAN_NAME_SESSION } from "../../src/semconv.ts";
import type { ReceivedMetric } from "../helpers/otlp-receiver.ts";
import type { QueryResult } from "../helpers/prometheus.ts";
import { waitFor } from "../helpers/wait.ts";
import { loadDashboard, metricNamesIn, promQueries, variableQuery, withVariables } from "./dashboard.ts";
import {
  COMPONENT_APP,
  COMPONENT_DEGRADED,
  COMPONENT_DEMO,
  type LiveStack,
  RULES_FILE,
  startLiveStack,
} from "./live-stack.ts";
import { parseMetricsReference } from "./metrics-reference.ts";

const DEADLINE_MS = 30_000;
let stack: LiveStack;

before(async () => {
  stack = await startLiveStack();
  await stack.prometheus.waitForTargetsUp(DEADLINE_MS);
});
after(async () => {
  await stack?.stop();
});

/**
 * Polls an instant query until it returns at least one series. A query
 * Prometheus refuses (bad PromQL) fails at once: only "no data yet" is waited on.
 */
async function series(expr: string): Promise<QueryResult> {
  const until = Date.now() + DEADLINE_MS;
  for (;;) {
    const result = await stack.prometheus.query(expr);
    if (result.resultType === "vector" && result.result.length > 0) return result;
    if (Date.now() > until)
      assert.fail(`no series within ${DEADLINE_MS} ms for ${expr} (last: ${JSON.stringify(result)})`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function metricNames(): Promise<Set<string>> {
  return new Set(await stack.prometheus.metricNames());
}

describe("the dashboard against live metrics", () => {
  const dashboard = loadDashboard();

  it("scrapes the tracker and three instrumented shell processes", async () => {
    const targets = await stack.prometheus.targets();
    assert.deepEqual(targets.map((t) => t.job).sort(), ["admin-app", "admin-app-degraded", "shell", "tracker"]);
    assert.ok(targets.every((t) => t.health === "up"));
  });

  for (const query of promQueries(dashboard)) {
    it(`panel "${query.panel}" (${query.refId}) parses and returns series`, async () => {
      const expr = withVariables(query.expr, dashboard);
      const result = await series(expr);
      assert.equal(result.resultType, "vector");
      // `or vector(0)` alone must not make a panel pass: every metric it reads must exist.
      const names = await metricNames();
      for (const metric of metricNamesIn(expr)) {
        assert.ok(names.has(metric), `${query.panel}: Prometheus has no ${metric}`);
      }
    });
  }

  it("finds components and hosts for the variables", async () => {
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    assert.equal(variableQuery(vars.get("component") as never), "label_values(shell_component_name)");
    const components = await series('count by (shell_component_name) ({shell_component_name!=""})');
    const found = (components.result as { metric: Record<string, string> }[]).map((s) => s.metric.shell_component_name);
    for (const c of [COMPONENT_APP, COMPONENT_DEMO, COMPONENT_DEGRADED]) assert.ok(found.includes(c), `component ${c}`);

    const hostSelector = /^label_values\((\{.*\}), instance\)$/.exec(variableQuery(vars.get("host") as never))?.[1];
    assert.ok(hostSelector);
    const hosts = await series(`count by (instance) (${hostSelector})`);
    const instances = (hosts.result as { metric: Record<string, string> }[]).map((s) => s.metric.instance).sort();
    assert.deepEqual(instances, Object.values(stack.instances).sort());

    const traceServices = /^label_values\((\w+), (\w+)\)$/.exec(variableQuery(vars.get("trace_service") as never));
    assert.ok(traceServices);
    await series(`count by (${traceServices[2]}) (${traceServices[1]})`);
  });
});

describe("prometheus-rules.yaml against live metrics", () => {
  const rules =
    (parse(readFileSync(RULES_FILE, "utf8")) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups[0]
      ?.rules ?? [];

  for (const rule of rules) {
    it(`${rule.alert}: the expression evaluates and returns series for the faults the stack created`, async () => {
      await series(rule.expr);
      const names = await metricNames();
      for (const metric of metricNamesIn(rule.expr)) assert.ok(names.has(metric), `Prometheus has no ${metric}`);
    });
  }

  it("Prometheus evaluates every rule without error, and the alerts go off", async () => {
    const expectedState: Record<string, string[]> = {
      ShellSessionEventsLost: ["firing"],
      ShellSessionsAbandoned: ["firing"],
      // These wait (for:) before firing.
      ShellSessionTrackerCircuitOpen: ["pending", "firing"],
      ShellSessionSpoolBacklog: ["pending", "firing"],
    };
    let last: unknown;
    await waitFor(
      () => `the rules to reach the expected state (last: ${JSON.stringify(last)})`,
      async () => {
        const loaded = await stack.prometheus.rules();
        last = loaded;
        for (const rule of loaded) assert.equal(rule.health === "err" ? rule.lastError : "", "", rule.name);
        const ok =
          loaded.length === rules.length &&
          loaded.every((r) => r.health === "ok" && (expectedState[r.name] ?? []).includes(r.state ?? ""));
        return ok ? true : undefined;
      },
      DEADLINE_MS,
      250,
    );
  });
});

describe("docs/monitoring.md's metrics reference", () => {
  const reference = parseMetricsReference(readFileSync(new URL("../../docs/monitoring.md", import.meta.url), "utf8"));

  type Emitted = Map<string, { type: string; unit: string; attributes: Set<string> }>;

  /** Every metric of this package the live processes exported over OTLP so far, merged across exports and processes. */
  function collect(): Emitted {
    const out: Emitted = new Map();
    for (const m of stack.otlp.metrics.filter((x) => x.scope.name === SCOPE_NAME)) {
      const entry = out.get(m.name) ?? { type: instrumentType(m), unit: m.unit, attributes: new Set<string>() };
      for (const p of m.dataPoints) for (const key of Object.keys(p.attributes)) entry.attributes.add(key);
      out.set(m.name, entry);
    }
    return out;
  }

  /**
   * Waits until every documented metric and attribute has been exported
   * (exports run every second, so the last calls of the stack may not be in
   * yet), then returns what was exported. If something never shows, returns
   * what there is: the comparison then names the difference.
   */
  async function emitted(): Promise<Emitted> {
    const complete = (e: Emitted) =>
      reference.every((r) => r.attributes.every((a) => e.get(r.name)?.attributes.has(a) ?? false));
    return waitFor(
      () => "every documented metric and attribute to be exported",
      async () => {
        const e = collect();
        return complete(e) ? e : undefined;
      },
      DEADLINE_MS,
      250,
    ).catch(() => collect());
  }

  it("documents exactly the metrics the code emits", async () => {
    const code = await emitted();
    assert.deepEqual(reference.map((r) => r.name).sort(), [...code.keys()].sort());
  });

  it("gives each metric the type, unit and attributes the code gives it", async () => {
    const code = await emitted();
    for (const doc of reference) {
      const actual = code.get(doc.name);
      assert.ok(actual, doc.name);
      assert.equal(doc.type, actual.type, `${doc.name} type`);
      assert.equal(doc.unit, actual.unit, `${doc.name} unit`);
      assert.deepEqual([...doc.attributes].sort(), [...actual.attributes].sort(), `${doc.name} attributes`);
    }
  });

  it("gives the Prometheus name each metric is scraped as", async () => {
    const names = await metricNames();
    for (const doc of reference) {
      const scraped = doc.type === "Histogram" ? `${doc.prometheusName}_bucket` : doc.prometheusName;
      assert.ok(names.has(scraped), `${doc.name}: Prometheus has no ${scraped}`);
    }
  });
});

function instrumentType(m: ReceivedMetric): string {
  if (m.type === "histogram") return "Histogram";
  if (m.type === "gauge") return "Gauge";
  if (m.type === "sum") return m.isMonotonic ? "Counter" : "UpDownCounter";
  return m.type;
}

describe("OTLP/HTTP export of the register entry", () => {
  it("sends the session span with its attributes, in the trace the banner showed", async () => {
    const { otlp, exitCommand } = stack;
    const span = await otlp.waitForSpan((s) => s.name === SPAN_NAME_SESSION && s.traceId === exitCommand.traceId);
    assert.equal(span.parentSpanId, "");
    assert.equal(span.scope.name, SCOPE_NAME);
    assert.equal(span.attributes["session.id"], exitCommand.sessionId);
    assert.equal(span.attributes["shell.component.name"], COMPONENT_APP);
    assert.equal(span.attributes["shell.exit.reason"], "exit_command");
    assert.equal(typeof span.attributes["shell.session.duration"], "number");
    // Host and process facts come on the resource, from the SDK's detectors, not copied onto the span.
    assert.equal(typeof span.resource["process.pid"], "number");
    assert.equal(typeof span.resource["host.name"], "string");
    assert.equal(span.resource["process.runtime.name"], "nodejs");
    assert.equal(span.attributes["host.name"], undefined);
    assert.ok(span.endTimeUnixNano > span.startTimeUnixNano);
    assert.ok(otlp.requests.some((r) => r.path === "/v1/traces" && r.contentType === "application/x-protobuf"));
    assert.deepEqual(otlp.errors, []);

    const hungUp = await otlp.waitForSpan((s) => s.name === SPAN_NAME_SESSION && s.traceId === stack.hangUp.traceId);
    assert.equal(hungUp.attributes["shell.exit.reason"], "eof");
  });

  it("joins the tracker's spans to the shell session's trace", async () => {
    const { otlp, exitCommand } = stack;
    const served = await otlp.waitForSpan(
      (s) => s.traceId === exitCommand.traceId && s.name === "tools/call track_session_start" && s.kind === 2,
    );
    assert.equal(served.kind, 2);
    assert.equal(served.resource["service.name"], "shell-sessions-tracker");
    assert.equal(served.attributes["gen_ai.tool.name"], "track_session_start");
    // One meaning of session.id in the trace: the shell's own id, the one its banner showed.
    assert.equal(served.attributes["session.id"], exitCommand.sessionId);
    assert.match(String(served.attributes["shell.tracker.session_id"]), /^sess_/);
  });

  it("sends the session metrics with their units", async () => {
    const { otlp } = stack;
    const fromApp = (m: ReceivedMetric) => m.scope.name === SCOPE_NAME && m.resource["process.pid"] !== undefined;
    const duration = await otlp.waitForMetric(
      "shell.session.duration",
      (m) =>
        fromApp(m) && m.dataPoints.some((p) => p.attributes["shell.component.name"] === COMPONENT_APP && p.count === 2),
    );
    assert.equal(duration.type, "histogram");
    assert.equal(duration.unit, "s");
    const ended = await otlp.waitForMetric("shell.session.ended", (m) =>
      m.dataPoints.some((p) => p.attributes["shell.component.name"] === COMPONENT_APP),
    );
    assert.equal(ended.unit, "{session}");
    assert.deepEqual(
      ended.dataPoints
        .filter((p) => p.attributes["shell.component.name"] === COMPONENT_APP)
        .map((p) => p.attributes["shell.exit.reason"])
        .sort(),
      ["eof", "exit_command"],
    );
    const latency = await otlp.waitForMetric("shell.emission.duration", (m) =>
      m.dataPoints.some((p) => p.attributes["shell.emission.outcome"] === "success"),
    );
    assert.equal(latency.unit, "s");
    assert.ok(otlp.requests.some((r) => r.path === "/v1/metrics" && r.contentType === "application/x-protobuf"));
  });
});
