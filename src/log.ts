/**
 * The one logger interface of the package, and the exporter's logger:
 * one-line messages to stderr, filtered by `SHELL_SESSIONS_LOG`
 * (debug | info | warn | error | silent; default warn). The tracker's
 * server writes the same interface its own way (server/log.ts).
 *
 * Delivery runs inside someone's interactive shell, so by default only what
 * an operator must know is printed: a lost event, a rejected credential (once),
 * a broken setting. Hand-rolled because a logging library would be a heavier
 * dependency than these twenty lines, and must not be configured by the host
 * program's own logging.
 */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Logs at warn level the first time `key` is seen by this logger, and never again. */
  warnOnce(key: string, message: string): void;
  readonly level: LogLevel;
}

export function parseLogLevel(value: string | undefined): LogLevel | undefined {
  const v = value?.trim().toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(v ?? "") ? (v as LogLevel) : undefined;
}

export function createLogger(
  level: LogLevel = parseLogLevel(process.env.SHELL_SESSIONS_LOG) ?? "warn",
  write: (line: string) => void = (line) => {
    try {
      process.stderr.write(line);
    } catch {
      // stderr closed (terminal gone): nothing else to do with the message.
    }
  },
): Logger {
  const rank = LOG_LEVELS.indexOf(level);
  const seen = new Set<string>();
  const emit = (at: LogLevel, message: string) => {
    if (LOG_LEVELS.indexOf(at) < rank) return;
    write(`shell-sessions: ${at}: ${message.replace(/[\r\n]+/g, " ")}\n`);
  };
  return {
    level,
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
    warnOnce: (key, m) => {
      if (seen.has(key)) return;
      seen.add(key);
      emit("warn", m);
    },
  };
}
