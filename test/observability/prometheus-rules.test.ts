/**
 * prometheus-rules.yaml: `promtool check rules` accepts it, and `promtool
 * test rules` (Prometheus' own rule unit tests, on synthetic series) shows
 * each alert fires when it should and stays quiet when it should not.
 * That the expressions match the metrics the code really exports is checked
 * against a live scrape in dashboard-queries.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { promtool } from "../helpers/prometheus.ts";

const RULES_FILE = fileURLToPath(new URL("../../prometheus-rules.yaml", import.meta.url));

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (parse(readFileSync(RULES_FILE, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);
const byName = new Map(rules.map((r) => [r.alert ?? r.record ?? "", r]));

/** Renders the only template forms the rules use: {{ $labels.NAME }} and {{ $value }}. */
function render(template: string, labels: Record<string, string>, value: number): string {
  return template
    .replace(/\{\{\s*\$labels\.(\w+)\s*\}\}/g, (_, name: string) => labels[name] ?? "")
    .replace(/\{\{\s*\$value\s*\}\}/g, String(value));
}

interface ExpectedAlert {
  labels: Record<string, string>;
  value: number;
}

function expected(alertname: string, alerts: ExpectedAlert[]) {
  const rule = byName.get(alertname);
  assert.ok(rule, `no rule ${alertname}`);
  return alerts.map(({ labels, value }) => {
    const all = { ...labels, ...rule.labels };
    return {
      exp_labels: all,
      exp_annotations: Object.fromEntries(
        Object.entries(rule.annotations ?? {}).map(([k, v]) => [k, render(v, all, value)]),
      ),
    };
  });
}

const SHELL = { job: "shell", instance: "host-a:9464" };
const TRACKER = { job: "tracker", instance: "host-t:9464" };

function series(name: string, labels: Record<string, string>): string {
  return `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`;
}

/** The circuit gauge's three series for a process whose state, minute by minute, is `states`. */
function circuit(labels: Record<string, string>, states: string, suffix = ""): { series: string; values: string }[] {
  const timeline = states.split(" ");
  return ["closed", "half_open", "open"].map((state) => ({
    series: series(`shell_exporter_circuit_state${suffix}`, { ...labels, shell_circuit_state: state }),
    values: timeline.map((s) => (s === state ? "1" : "0")).join(" "),
  }));
}

const unitTests = [
  {
    name: "a new process whose first lost event makes the counter appear at 1",
    interval: "1m",
    input_series: [
      {
        series: series("shell_emissions_total", {
          ...SHELL,
          shell_event_type: "session_end",
          shell_emission_outcome: "lost",
        }),
        values: "_ _ 1 1 1",
      },
      {
        series: series("shell_emissions_total", {
          ...SHELL,
          shell_event_type: "session_end",
          shell_emission_outcome: "spooled",
        }),
        values: "1 2 3 4 5",
      },
    ],
    alert_rule_test: [
      { eval_time: "1m", alertname: "ShellSessionEventsLost", exp_alerts: [] },
      {
        eval_time: "3m",
        alertname: "ShellSessionEventsLost",
        exp_alerts: expected("ShellSessionEventsLost", [
          { labels: { ...SHELL, shell_event_type: "session_end" }, value: 1 },
        ]),
      },
    ],
  },
  {
    name: "a tracker that stays down keeps the circuit opening; a healthy one does not",
    interval: "1m",
    input_series: [
      // One series per state, 1 on the current one. Open, then half-open between probes, reopened at every probe.
      ...circuit(
        SHELL,
        "closed open half_open half_open open half_open half_open open half_open half_open open half_open half_open open half_open half_open",
      ),
      ...circuit({ ...SHELL, instance: "host-b:9464" }, Array(16).fill("closed").join(" ")),
      // Opened once, then closed again: a blip.
      ...circuit({ ...SHELL, instance: "host-c:9464" }, `closed open half_open ${Array(13).fill("closed").join(" ")}`),
      // Through a Collector, which names the unit-"1" gauge …_ratio: stays open.
      ...circuit({ job: "otel-collector", instance: "3f2c" }, Array(16).fill("open").join(" "), "_ratio"),
    ],
    alert_rule_test: [
      { eval_time: "3m", alertname: "ShellSessionTrackerCircuitOpen", exp_alerts: [] },
      {
        eval_time: "12m",
        alertname: "ShellSessionTrackerCircuitOpen",
        exp_alerts: expected("ShellSessionTrackerCircuitOpen", [
          { labels: SHELL, value: 1 },
          { labels: { job: "otel-collector", instance: "3f2c" }, value: 1 },
        ]),
      },
    ],
  },
  {
    name: "abandoned sessions: the first one of a new series, a later one, none",
    interval: "5m",
    input_series: [
      // Appears at 1 at 95m: the first abandonment for this component since the tracker started.
      {
        series: series("shell_tracker_sessions_abandoned_total", { ...TRACKER, shell_component_name: "mahavishnu" }),
        values: "_x19 1x20",
      },
      // Constant for more than an hour, then one more at 150m.
      {
        series: series("shell_tracker_sessions_abandoned_total", { ...TRACKER, shell_component_name: "oneiric" }),
        values: "3x29 4x6",
      },
    ],
    alert_rule_test: [
      {
        eval_time: "100m",
        alertname: "ShellSessionsAbandoned",
        exp_alerts: expected("ShellSessionsAbandoned", [
          { labels: { ...TRACKER, shell_component_name: "mahavishnu" }, value: 1 },
        ]),
      },
      {
        eval_time: "165m",
        alertname: "ShellSessionsAbandoned",
        exp_alerts: expected("ShellSessionsAbandoned", [
          { labels: { ...TRACKER, shell_component_name: "oneiric" }, value: 1 },
        ]),
      },
    ],
  },
  {
    name: "a spool backlog that does not drain",
    interval: "5m",
    input_series: [
      { series: series("shell_spool_depth", SHELL), values: "4x10" },
      { series: series("shell_spool_depth", { ...SHELL, instance: "host-b:9464" }), values: "4 4 0x8" },
    ],
    alert_rule_test: [
      { eval_time: "20m", alertname: "ShellSessionSpoolBacklog", exp_alerts: [] },
      {
        eval_time: "40m",
        alertname: "ShellSessionSpoolBacklog",
        exp_alerts: expected("ShellSessionSpoolBacklog", [{ labels: SHELL, value: 4 }]),
      },
    ],
  },
];

describe("prometheus-rules.yaml", () => {
  const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-rules-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("passes promtool check rules", async () => {
    const result = await promtool(["check", "rules", RULES_FILE]);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it("has the alerts the runbook documents, each with a severity, a summary and a description", () => {
    assert.deepEqual(rules.map((r) => r.alert).sort(), [
      "ShellSessionEventsLost",
      "ShellSessionSpoolBacklog",
      "ShellSessionTrackerCircuitOpen",
      "ShellSessionsAbandoned",
    ]);
    for (const rule of rules) {
      assert.match(rule.labels?.severity ?? "", /^(critical|warning)$/, `${rule.alert} severity`);
      assert.ok(rule.annotations?.summary, `${rule.alert} summary`);
      assert.ok(rule.annotations?.description, `${rule.alert} description`);
    }
    const runbook = readFileSync(new URL("../../docs/monitoring.md", import.meta.url), "utf8");
    for (const rule of rules)
      assert.ok(runbook.includes(rule.alert ?? ""), `docs/monitoring.md explains ${rule.alert}`);
  });

  for (const unit of unitTests) {
    it(`fires as expected: ${unit.name}`, async () => {
      const file = join(dir, `${unit.alert_rule_test[0]?.alertname}.test.yaml`);
      const { name: _name, ...test } = unit;
      // JSON is YAML: promtool reads this as it is.
      writeFileSync(file, JSON.stringify({ rule_files: [RULES_FILE], evaluation_interval: "1m", tests: [test] }));
      const result = await promtool(["test", "rules", file]);
      assert.equal(result.code, 0, `promtool test rules:\n${result.stdout}\n${result.stderr}`);
      assert.match(result.stdout, /SUCCESS/);
    });
  }

  it("would catch an alert that does not fire (the unit tests can fail)", async () => {
    const file = join(dir, "negative.test.yaml");
    const test = {
      interval: "1m",
      input_series: [{ series: series("shell_spool_depth", SHELL), values: "0x10" }],
      alert_rule_test: [
        {
          eval_time: "40m",
          alertname: "ShellSessionSpoolBacklog",
          exp_alerts: expected("ShellSessionSpoolBacklog", [{ labels: SHELL, value: 4 }]),
        },
      ],
    };
    writeFileSync(file, JSON.stringify({ rule_files: [RULES_FILE], evaluation_interval: "1m", tests: [test] }));
    const result = await promtool(["test", "rules", file]);
    assert.notEqual(result.code, 0);
    assert.match(result.stdout + result.stderr, /FAILED/);
  });
});
