/**
 * Heartbeats for the sessions the tracker acknowledged, so its lease does
 * not declare a quiet shell abandoned. Ephemeral by design: never retried,
 * never spooled, skipped while the circuit is open. The timer is unref'd
 * (it never keeps the process alive) and stops by itself when no session
 * needs it.
 */
import type { SessionRef } from "./jobs.ts";

export interface HeartbeatsOptions {
  /** Milliseconds between rounds; 0 turns heartbeats off. */
  intervalMs: number;
  /** Sessions that want a heartbeat now. */
  live: () => SessionRef[];
  /** A round stops early when this says so (delivery stopping, circuit open). */
  halted: () => boolean;
  /** Sends one; false when the tracker offers no heartbeat, which ends the round. */
  beat: (session: SessionRef) => Promise<boolean>;
  /** Told when a round fails as a whole. */
  onError: (error: unknown) => void;
}

export class Heartbeats {
  readonly #o: HeartbeatsOptions;
  #timer: NodeJS.Timeout | undefined;
  /** The round in progress, if one is. */
  #round: Promise<void> | undefined;

  constructor(options: HeartbeatsOptions) {
    this.#o = options;
  }

  /** Starts the rounds, unless they run already or heartbeats are off. */
  ensure(): void {
    if (this.#timer || this.#o.intervalMs <= 0) return;
    this.#timer = setInterval(() => {
      // One round at a time: a round slower than the interval (a slow tracker) is not joined by the next.
      if (this.#round !== undefined) return;
      this.#round = this.#beatAll()
        .catch(this.#o.onError)
        .finally(() => {
          this.#round = undefined;
        });
    }, this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #beatAll(): Promise<void> {
    const live = this.#o.live();
    if (live.length === 0) {
      this.stop();
      return;
    }
    for (const session of live) {
      if (this.#o.halted()) return;
      if (!(await this.#o.beat(session))) return;
    }
  }
}
