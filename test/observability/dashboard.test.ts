/**
 * dashboards/shell-sessions.json as Grafana imports it: data sources chosen
 * through variables, the component and host filters in every query that
 * can take them, the panels the monitoring guide promises, a layout without
 * overlaps. Whether its queries run against real metrics is
 * dashboard-queries.test.ts's job.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { loadDashboard, metricNamesIn, type Panel, promQueries, variableQuery, withVariables } from "./dashboard.ts";

const dashboard = loadDashboard();
const panels = dashboard.panels.filter((p) => p.type !== "row");
const byTitle = (title: string): Panel => {
  const panel = panels.find((p) => p.title === title);
  assert.ok(panel, `no panel "${title}"`);
  return panel;
};
const exprs = (title: string) => (byTitle(title).targets ?? []).map((t) => t.expr ?? "");

describe("dashboards/shell-sessions.json", () => {
  it("is importable: a stable uid, no instance id, data sources chosen by variables", () => {
    assert.equal(dashboard.uid, "otel-shell-sessions");
    assert.equal(dashboard.id, null);
    assert.ok(dashboard.schemaVersion >= 36);
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get("datasource")?.type, "datasource");
    assert.equal(vars.get("datasource")?.query, "prometheus");
    assert.equal(vars.get("jaeger")?.query, "jaeger");
    for (const panel of panels) {
      const sources = [panel.datasource, ...(panel.targets ?? []).map((t) => t.datasource)];
      for (const ds of sources) {
        assert.ok(ds, `${panel.title}: every panel and target names its data source`);
        assert.equal(ds.uid, ds.type === "jaeger" ? `\${jaeger}` : `\${datasource}`, `${panel.title}: ${ds.uid}`);
      }
    }
  });

  it("filters by component and host, each defaulting to all", () => {
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    for (const name of ["component", "host"]) {
      const v = vars.get(name);
      assert.equal(v?.type, "query");
      assert.equal(v?.includeAll, true);
      assert.equal(v?.multi, true);
      assert.equal(v?.allValue, ".*");
      assert.equal(v?.datasource?.uid, `\${datasource}`);
    }
    assert.equal(variableQuery(vars.get("component") as never), "label_values(shell_component_name)");
    for (const { panel, expr } of promQueries(dashboard)) {
      assert.match(expr, /instance=~"\$host"/, `${panel} filters by host`);
      // Only these carry the component label.
      const withComponent = metricNamesIn(expr).some((m) =>
        /^shell_(session_(active|started_total|ended_total|duration_bucket)|tracker_sessions_(started|ended|abandoned)_total)$/.test(
          m,
        ),
      );
      if (withComponent) assert.match(expr, /shell_component_name=~"\$component"/, `${panel} filters by component`);
    }
  });

  it("has the panels the monitoring guide describes", () => {
    const required = [
      "Active sessions (tracker)",
      "Active sessions (shells)",
      "Sessions started",
      "Sessions ended by exit reason",
      "Session duration percentiles",
      "Sessions abandoned",
      "Lost events",
      "Circuit state",
      "Spool depth",
      "Emissions by outcome",
      "Emission latency by event type",
      "Recent shell sessions",
    ];
    for (const title of required) byTitle(title);
    const guide = readFileSync(new URL("../../docs/monitoring.md", import.meta.url), "utf8");
    for (const panel of panels) assert.ok(guide.includes(panel.title), `docs/monitoring.md describes "${panel.title}"`);
    for (const panel of panels) assert.ok(panel.description, `${panel.title} has a description`);
  });

  it("shows session counts, durations and endings from the right metrics", () => {
    assert.match(exprs("Sessions ended by exit reason")[0] ?? "", /sum by \(shell_exit_reason\)/);
    assert.deepEqual(
      exprs("Session duration percentiles").map((e) => /histogram_quantile\((0\.\d+),/.exec(e)?.[1]),
      ["0.5", "0.9", "0.99"],
    );
    for (const e of exprs("Session duration percentiles")) {
      assert.deepEqual(metricNamesIn(e), ["shell_session_duration_bucket"]);
      assert.match(e, /__name__=~"shell_session_duration\(_seconds\)\?_bucket"/, "matches the Collector's name too");
    }
    assert.ok(exprs("Sessions abandoned")[0]?.includes("shell_tracker_sessions_abandoned_total"));
  });

  it("shows emission latency p50 and p99 by event type, and emissions by outcome", () => {
    const latency = exprs("Emission latency by event type");
    assert.deepEqual(
      latency.map((e) => /histogram_quantile\((0\.\d+), sum by \(le, shell_event_type\)/.exec(e)?.[1]),
      ["0.5", "0.99"],
    );
    assert.match(exprs("Emissions by outcome")[0] ?? "", /sum by \(shell_emission_outcome\)/);
  });

  it("shows lost events as a big stat that is green at 0 and red from 1", () => {
    const lost = byTitle("Lost events");
    assert.equal(lost.type, "stat");
    assert.match(exprs("Lost events")[0] ?? "", /shell_emission_outcome="lost"/);
    assert.match(exprs("Lost events")[0] ?? "", /or vector\(0\)$/, "reads 0, not 'No data', when nothing was lost");
    const steps = lost.fieldConfig?.defaults.thresholds.steps as { color: string; value: number | null }[];
    assert.deepEqual(steps, [
      { color: "green", value: null },
      { color: "red", value: 1 },
    ]);
    assert.equal(lost.options?.colorMode, "background");
    assert.ok((lost.options?.text?.valueSize ?? 0) >= 48);
  });

  it("names the circuit states", () => {
    const circuit = byTitle("Circuit state");
    const mapping = circuit.fieldConfig?.defaults.mappings[0].options as Record<string, { text: string }>;
    assert.deepEqual(Object.fromEntries(Object.entries(mapping).map(([k, v]) => [k, v.text])), {
      "0": "closed",
      "1": "half-open",
      "2": "open",
    });
  });

  it("lists recent sessions from Jaeger, each trace id linking to the trace", () => {
    const table = byTitle("Recent shell sessions");
    assert.equal(table.type, "table");
    const target = table.targets?.[0];
    assert.equal(target?.datasource?.type, "jaeger");
    assert.equal(target?.queryType, "search");
    assert.equal(target?.operation, "shell.session");
    assert.equal(target?.service, "$trace_service");
    const link = table.fieldConfig?.overrides.find((o) => o.matcher.options === "traceID")?.properties[0]?.value[0];
    assert.equal(link?.url, `\${jaeger_ui}/trace/\${__value.raw}`);
  });

  it("lays panels out on the 24-column grid without overlaps, with unique ids", () => {
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits in 24 columns`);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          const cell = `${x},${y}`;
          assert.ok(!cells.has(cell), `${p.title} overlaps another panel at ${cell}`);
          cells.add(cell);
        }
      }
    }
  });

  it("leaves no dashboard variable in the queries Prometheus will see", () => {
    for (const { panel, expr } of promQueries(dashboard)) {
      assert.doesNotMatch(withVariables(expr, dashboard), /\$/, panel);
    }
  });
});
