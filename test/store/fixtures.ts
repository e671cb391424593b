/**
 * Contract-valid events for store tests, parsed through the contract's own
 * schemas exactly as the server does before it calls a store.
 */
import { randomUUID } from "node:crypto";
import {
  HeartbeatEvent,
  type SessionEndEvent,
  SessionEndEvent as SessionEndEventSchema,
  type SessionStartEvent,
  SessionStartEvent as SessionStartEventSchema,
} from "../../src/contract/schemas.ts";

export const T0 = new Date("2026-01-31T12:00:00.000Z");

/** `T0` plus `seconds`. */
export function at(seconds: number): Date {
  return new Date(T0.getTime() + seconds * 1000);
}

type StartOverrides = Partial<Omit<Record<keyof SessionStartEvent, unknown>, "user" | "environment">> & {
  user?: Record<string, unknown>;
  environment?: Record<string, unknown>;
};

export function startEvent(overrides: StartOverrides = {}): SessionStartEvent {
  const { user, environment, ...rest } = overrides;
  return SessionStartEventSchema.parse({
    event_version: "1.0",
    event_id: randomUUID(),
    event_type: "session_start",
    component_name: "mahavishnu",
    shell_type: "MahavishnuShell",
    timestamp: T0.toISOString(),
    pid: 4242,
    user: { username: "ops", home: "/home/ops", ...user },
    hostname: "app-1.example.com",
    environment: { python_version: "n/a (node v24.0.0)", platform: "linux", cwd: "/srv/app", ...environment },
    metadata: { component_version: "1.2.3" },
    ...rest,
  });
}

export function endEvent(sessionId: string, overrides: Record<string, unknown> = {}): SessionEndEvent {
  return SessionEndEventSchema.parse({
    session_id: sessionId,
    timestamp: at(60).toISOString(),
    event_type: "session_end",
    metadata: { exit_reason: "exit_command" },
    ...overrides,
  });
}

export function heartbeat(sessionId: string): HeartbeatEvent {
  return HeartbeatEvent.parse({ session_id: sessionId, timestamp: T0.toISOString(), event_type: "heartbeat" });
}
