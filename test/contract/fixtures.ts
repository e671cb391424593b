/** Payloads the contract tests share. */
export function validStart(): Record<string, unknown> {
  return {
    event_version: "1.0",
    event_id: "0f8fad5b-d9cb-469f-a165-70867728950e",
    event_type: "session_start",
    component_name: "mahavishnu",
    shell_type: "MahavishnuShell",
    timestamp: "2026-11-21T12:00:00.123Z",
    pid: 4242,
    user: { username: "ops", home: "/home/ops" },
    hostname: "web-1",
    environment: { python_version: "n/a (node v24.21.0)", platform: "linux", cwd: "/srv/app" },
    metadata: { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", component_version: "1.2.3" },
  };
}

/** Every field of track_session_start that Session-Buddy 1.0 requires, nested ones as dotted paths. */
export const START_REQUIRED_FIELDS = [
  "event_version",
  "event_id",
  "event_type",
  "component_name",
  "shell_type",
  "timestamp",
  "pid",
  "user",
  "user.username",
  "user.home",
  "hostname",
  "environment",
  "environment.python_version",
  "environment.platform",
  "environment.cwd",
] as const;

/** The required top-level fields of track_session_start. */
export const START_REQUIRED_KEYS = START_REQUIRED_FIELDS.filter(
  (field): field is Exclude<(typeof START_REQUIRED_FIELDS)[number], `${string}.${string}`> => !field.includes("."),
);

/** The fields of track_session_start that must be strings, nested ones as dotted paths. */
export const START_STRING_FIELDS = [
  "shell_type",
  "hostname",
  "user.username",
  "user.home",
  "environment.python_version",
  "environment.platform",
  "environment.cwd",
  "token",
] as const;

export function validEnd(): Record<string, unknown> {
  return {
    session_id: "sess_abc",
    timestamp: "2026-11-21T12:05:00Z",
    event_type: "session_end",
    metadata: { duration_seconds: 300, exit_reason: "exit_command" },
  };
}

/** Deep copy with `path` set to `value` (or removed when value is `undefined`). */
export function withField(payload: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(payload);
  const keys = path.split(".");
  const last = keys.pop() as string;
  let target = copy as Record<string, unknown>;
  for (const key of keys) target = target[key] as Record<string, unknown>;
  if (value === undefined) delete target[last];
  else target[last] = value;
  return copy;
}
