/**
 * Log lines an attacker can cause (failed requests, refusals) are rate
 * limited per kind: a burst is written, the rest are counted and summed up
 * in one line when the window ends. A flood then costs a few lines a minute,
 * not one per request.
 */
import type { Logger } from "./log.ts";

export const LOG_WINDOW_MS = 10_000;
export const LOG_BURST = 5;

interface Window {
  startedAt: number;
  written: number;
  suppressed: number;
  level: keyof Logger;
  timer?: NodeJS.Timeout;
}

export class LogThrottle {
  readonly #log: Logger;
  readonly #windowMs: number;
  readonly #burst: number;
  readonly #windows = new Map<string, Window>();

  constructor(log: Logger, options: { windowMs?: number; burst?: number } = {}) {
    this.#log = log;
    this.#windowMs = options.windowMs ?? LOG_WINDOW_MS;
    this.#burst = options.burst ?? LOG_BURST;
  }

  /** Writes `message()` unless `kind` already wrote its burst in this window. */
  write(level: keyof Logger, kind: string, message: () => string): void {
    const now = Date.now();
    let window = this.#windows.get(kind);
    if (window === undefined || now - window.startedAt >= this.#windowMs) {
      if (window) this.#summarise(kind, window);
      window = { startedAt: now, written: 0, suppressed: 0, level };
      this.#windows.set(kind, window);
    }
    if (window.written < this.#burst) {
      window.written++;
      this.#log[level](message());
      return;
    }
    window.suppressed++;
    if (window.timer === undefined) {
      const current = window;
      current.timer = setTimeout(() => this.#close(kind, current), this.#windowMs - (now - current.startedAt));
      current.timer.unref();
    }
  }

  /** Writes the pending summaries now (on shutdown). */
  flush(): void {
    for (const [kind, window] of this.#windows) this.#close(kind, window);
  }

  #close(kind: string, window: Window): void {
    if (this.#windows.get(kind) === window) this.#windows.delete(kind);
    this.#summarise(kind, window);
  }

  #summarise(kind: string, window: Window): void {
    if (window.timer) clearTimeout(window.timer);
    window.timer = undefined;
    if (window.suppressed === 0) return;
    const seconds = Math.round(this.#windowMs / 1000);
    this.#log[window.level](`${kind}: ${window.suppressed} more in the last ${seconds} s (not logged one by one)`);
    window.suppressed = 0;
  }
}
