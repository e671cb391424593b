/**
 * The lease sweeper: a session with no heartbeat or end for a lease period
 * is marked abandoned (a shell killed with SIGKILL sends nothing, and must
 * not stay "active" forever). Several instances on one database may sweep
 * at once; the store hands each abandoned session to exactly one of them.
 */
import type { SessionRecord } from "../contract/schemas.ts";
import type { SessionStore } from "../store/types.ts";
import type { Logger } from "./log.ts";
import { sweepIntervalMs } from "./options.ts";
import type { ServerTelemetry } from "./telemetry.ts";

/** Marks sessions whose lease ran out as abandoned; returns them. */
export function expireLeases(store: SessionStore, leaseSeconds: number, now = new Date()): Promise<SessionRecord[]> {
  return store.expireLeases(new Date(now.getTime() - leaseSeconds * 1000));
}

export interface LeaseSweeper {
  /** Runs one sweep now (also what the timer runs). */
  sweep(): Promise<void>;
  /** Stops the timer and waits for a sweep in progress. */
  stop(): Promise<void>;
}

export function startLeaseSweeper(options: {
  store: SessionStore;
  leaseSeconds: number;
  telemetry: ServerTelemetry;
  log: Logger;
  intervalMs?: number;
}): LeaseSweeper {
  const { store, leaseSeconds, telemetry, log } = options;
  const intervalMs = options.intervalMs ?? sweepIntervalMs(leaseSeconds);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  let failing = false;

  const sweepOnce = async () => {
    try {
      const abandoned = await expireLeases(store, leaseSeconds);
      if (abandoned.length > 0) telemetry.sessionsAbandoned(abandoned.map((s) => s.component_name));
      telemetry.setActive(await store.countActive());
      if (failing) log.info("lease sweep works again");
      failing = false;
    } catch (error) {
      // Log the first failure of a run, not one line per sweep while the store is down.
      if (!failing) log.error(`lease sweep failed: ${error instanceof Error ? error.message : String(error)}`);
      failing = true;
    }
  };

  const sweep = () => {
    // Never two sweeps at once from one instance: a slow store must not pile them up.
    running ??= sweepOnce().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void sweep().then(schedule);
    }, intervalMs);
    // The sweeper alone must not keep the process alive.
    timer.unref();
  };

  void sweep().then(schedule);

  return {
    sweep,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
