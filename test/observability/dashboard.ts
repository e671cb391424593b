/**
 * Reading dashboards/shell-sessions.json for tests: its panels, their
 * PromQL, and the Grafana variables in it replaced by values Prometheus
 * can evaluate.
 */
import { readFileSync } from "node:fs";

export const DASHBOARD_FILE = new URL("../../dashboards/shell-sessions.json", import.meta.url);

export interface Target {
  refId: string;
  expr?: string;
  queryType?: string;
  service?: string;
  operation?: string;
  datasource?: { type: string; uid: string };
}

// biome-ignore lint/suspicious/noExplicitAny: Grafana's field config and panel options are free-form JSON
type FreeJson = any;

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  fieldConfig?: {
    defaults: Record<string, FreeJson>;
    overrides: { matcher: { id: string; options: string }; properties: { id: string; value: FreeJson }[] }[];
  };
  options?: Record<string, FreeJson>;
}

export interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  definition?: string;
  includeAll?: boolean;
  allValue?: string;
  multi?: boolean;
  datasource?: { type: string; uid: string };
}

export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
  [key: string]: unknown;
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, "utf8")) as Dashboard;
}

export interface PanelQuery {
  panel: string;
  refId: string;
  expr: string;
}

/** Every PromQL expression of the dashboard, with the panel it belongs to. */
export function promQueries(dashboard: Dashboard): PanelQuery[] {
  return dashboard.panels.flatMap((panel) =>
    (panel.targets ?? [])
      .filter((t) => (t.datasource?.type ?? panel.datasource?.type) === "prometheus")
      .map((t) => ({ panel: panel.title, refId: t.refId, expr: t.expr ?? "" })),
  );
}

/**
 * What Grafana would send for the dashboard's defaults: "All" for the
 * multi-value variables (their allValue), and concrete windows for the
 * built-in interval variables.
 */
export function withVariables(
  expr: string,
  dashboard: Dashboard,
  builtins = { rateInterval: "1m", range: "5m" },
): string {
  let out = expr.replaceAll("$__rate_interval", builtins.rateInterval).replaceAll("$__range", builtins.range);
  for (const v of dashboard.templating.list) {
    if (v.includeAll && v.allValue !== undefined)
      out = out.replace(new RegExp(`\\$\\{?${v.name}\\b\\}?`, "g"), v.allValue);
  }
  return out;
}

/** The query text of a query variable. */
export function variableQuery(v: Variable): string {
  return typeof v.query === "string" ? v.query : v.query.query;
}

/**
 * Metric names an expression reads, as the Node.js Prometheus exporter
 * names them. A `__name__=~"NAME(_seconds)?_bucket"` selector (which also
 * matches the Collector's suffixed names) counts as NAME_bucket. Label
 * names share the metrics' prefixes, so matchers and grouping clauses are
 * removed before looking for bare names.
 */
export function metricNamesIn(expr: string): string[] {
  const byRegex = [...expr.matchAll(/__name__=~"([^"]+)"/g)].map((m) => (m[1] as string).replace(/\([^)]*\)\?/g, ""));
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  const bare = stripped.match(/\b(?:shell|mcp|otel_sdk|target)_[a-z0-9_]+\b/g) ?? [];
  return [...new Set([...byRegex, ...bare])];
}
