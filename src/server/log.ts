/**
 * The server's log: one line per message on stderr. Never stdout, which
 * belongs to the MCP protocol when serving over stdio. Callers never pass a
 * token or secret; messages are still stripped of control characters so a
 * caller-supplied value cannot forge log lines.
 */
import { sanitizeText } from "../contract/sanitize.ts";
import type { Logger as PackageLogger } from "../log.ts";

/**
 * The part of the package's one logger interface the server uses: a logger
 * made by `createLogger`, or any object with these three methods, will do.
 */
export type Logger = Pick<PackageLogger, "info" | "warn" | "error">;

export function stderrLogger(prefix = "shell-sessions serve", stream: NodeJS.WritableStream = process.stderr): Logger {
  const write = (level: string, message: string) => {
    stream.write(`${prefix}: ${level}${sanitizeText(message, 4000)}\n`);
  };
  return {
    info: (message) => write("", message),
    warn: (message) => write("WARNING: ", message),
    error: (message) => write("error: ", message),
  };
}

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };
