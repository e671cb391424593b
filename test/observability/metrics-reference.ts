/**
 * Reads the metrics reference table of docs/monitoring.md: the rows between
 * the `<!-- metrics-reference:start -->` and `<!-- metrics-reference:end -->`
 * markers, one metric per row:
 *
 * | OpenTelemetry name | Prometheus name | Type | Unit | Attributes | Emitted by | Meaning |
 */

export interface DocumentedMetric {
  name: string;
  prometheusName: string;
  type: string;
  unit: string;
  attributes: string[];
  emittedBy: string;
  meaning: string;
}

const START = "<!-- metrics-reference:start -->";
const END = "<!-- metrics-reference:end -->";

const code = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);

export function parseMetricsReference(markdown: string): DocumentedMetric[] {
  const start = markdown.indexOf(START);
  const end = markdown.indexOf(END);
  if (start < 0 || end < start) throw new Error(`docs/monitoring.md lacks the ${START} … ${END} markers`);
  const rows = markdown
    .slice(start + START.length, end)
    .split("\n")
    .filter((line) => line.startsWith("| `"));
  return rows.map((row) => {
    const cells = row
      .split(/(?<!\\)\|/)
      .slice(1, -1)
      .map((c) => c.trim());
    if (cells.length !== 7) throw new Error(`metrics reference row has ${cells.length} cells, not 7: ${row}`);
    const [name, prometheusName, type, unit, attributes, emittedBy, meaning] = cells as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    return {
      name: code(name)[0] ?? "",
      prometheusName: code(prometheusName)[0] ?? "",
      type,
      unit: code(unit)[0] ?? "",
      attributes: code(attributes),
      emittedBy,
      meaning,
    };
  });
}
