/**
 * This package's name and version (MCP client and server info, telemetry
 * scopes, `--version`). Read with `readFileSync` rather than `createRequire`,
 * which costs a few milliseconds more on a shell's way to its prompt.
 */
const { readFileSync } = process.getBuiltinModule("node:fs");

// From src/ or dist/, the package root is one level up.
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
};
export const { name, version } = pkg;
/** The `@opentelemetry/api` versions this package's SDK works with, for messages about a conflict. */
export const openTelemetryApiRange = pkg.dependencies["@opentelemetry/api"] ?? "";
