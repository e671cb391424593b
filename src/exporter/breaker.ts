/**
 * The circuit breaker around every MCP call (opossum).
 *
 * opossum opens on an error *rate* over a rolling window, once the window has
 * seen `volumeThreshold` calls. We want "N consecutive failures open it", so
 * the window is one bucket that we rotate ourselves (opossum's
 * `rotateBucketController`) on every success: the window then only ever holds
 * the calls since the last success. With `volumeThreshold` = N and any error
 * threshold below 100 %, the N-th failure in a row opens the circuit, and not
 * one earlier. After `resetTimeout` it goes half-open and lets one probe
 * through: success closes it, failure opens it again.
 *
 * Calls time out in the client (which aborts them for real), so opossum's
 * own timeout is off. Rejections (the tracker answered "no") and our own
 * aborts are not failures of the tracker and do not count (`errorFilter`).
 * opossum counts a filtered error as a success, which is right for a
 * rejection (the tracker answered) but not for our abort of a half-open
 * probe (a park or exit cut it): that says nothing of the tracker, so the
 * circuit goes back to open and the next probe comes after the reset time.
 */
import { EventEmitter } from "node:events";
import CircuitBreaker from "opossum";
import type { CIRCUIT_STATES } from "../semconv.ts";
import { classifyError } from "./errors.ts";

export type CircuitState = (typeof CIRCUIT_STATES)[number];

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. */
  failures: number;
  /** Milliseconds an open circuit waits before a half-open probe. */
  resetMs: number;
  onStateChange?: (state: CircuitState) => void;
}

type Task = () => Promise<unknown>;

export class Breaker {
  readonly #breaker: CircuitBreaker<[Task], unknown>;
  #state: CircuitState = "closed";
  /** A half-open probe was aborted by us: the close opossum makes of it is undone. */
  #probeAborted = false;

  constructor(options: BreakerOptions) {
    const rotate = new EventEmitter();
    this.#breaker = new CircuitBreaker<[Task], unknown>((task: Task) => task(), {
      timeout: false,
      resetTimeout: options.resetMs,
      volumeThreshold: options.failures,
      errorThresholdPercentage: 50,
      rollingCountBuckets: 1,
      // Not a time window any more (we rotate on success); still required to be positive.
      rollingCountTimeout: 60_000,
      rotateBucketController: rotate,
      enableSnapshots: false,
      rollingPercentilesEnabled: false,
      errorFilter: (error: unknown) => {
        const kind = classifyError(error).kind;
        if (kind === "aborted" && this.#breaker.halfOpen) this.#probeAborted = true;
        return kind === "rejected" || kind === "aborted";
      },
    });
    this.#breaker.on("success", () => rotate.emit("rotate"));
    const set = (state: CircuitState) => {
      if (this.#state === state) return;
      this.#state = state;
      options.onStateChange?.(state);
    };
    this.#breaker.on("open", () => set("open"));
    this.#breaker.on("halfOpen", () => set("half_open"));
    this.#breaker.on("close", () => {
      if (!this.#probeAborted) return set("closed");
      this.#probeAborted = false;
      this.#breaker.open();
    });
  }

  get state(): CircuitState {
    return this.#state;
  }

  /** Runs `task` through the circuit; rejects with opossum's EOPENBREAKER error while open. */
  fire<T>(task: () => Promise<T>): Promise<T> {
    return this.#breaker.fire(task) as Promise<T>;
  }

  shutdown(): void {
    this.#breaker.shutdown();
  }
}
