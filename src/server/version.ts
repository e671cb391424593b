/** The package version, reported in the MCP server info, health_check and the telemetry scope. */
import { createRequire } from "node:module";

// From src/server or dist/server, the package root is two levels up.
const pkg = createRequire(import.meta.url)("../../package.json") as { version: string };
export const packageVersion: string = pkg.version;
