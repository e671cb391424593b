/** `shell-sessions list`: list tracked sessions, reading the store directly. */
import { sanitizeText } from "../../contract/sanitize.ts";
import {
  COMPONENT_NAME_PATTERN,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  type SessionRecord,
  SessionStatus,
} from "../../contract/schemas.ts";
import { DEFAULT_LEASE_SECONDS, ENV_LEASE_SECONDS, ENV_STORE } from "../../server/options.ts";
import { parseCommandArgs, usageError } from "../args.ts";
import { withStore } from "../store-access.ts";

export const usage = `Usage: shell-sessions list [options]

List tracked sessions, newest first, reading the tracker's store directly
(no server needs to run). Sessions whose lease ran out are marked abandoned
first, so --active is right even when no server is sweeping.

Options:
  --active            only active sessions (same as --status active)
  --status STATUS     only sessions with this status: active, ended, abandoned
  --component NAME    only sessions of this component
  --host HOSTNAME     only sessions from this host
  --id ID             only the session with this id: the tracker's id (sess_…),
                      its trace id, or the session id the shell's banner prints
  --limit N           show at most N sessions (default ${LIST_LIMIT_DEFAULT}, at most ${LIST_LIMIT_MAX})
  --store SPEC        sqlite:PATH or a postgres:// URL (default $${ENV_STORE},
                      else sqlite:<state dir>/tracker.db)
  --lease SECONDS     the lease to apply (default $${ENV_LEASE_SECONDS}, else ${DEFAULT_LEASE_SECONDS});
                      use the same value as the server
  --json              print the sessions as a JSON array (all fields)
  -h, --help          show this help

Examples:
  shell-sessions list --active
  shell-sessions list --component mahavishnu --limit 10
  shell-sessions list --store postgres://tracker@db.internal/tracker --json
`;

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

/** `1h02m03s`, `4m05s`, `12s`. */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${pad2(m)}m${pad2(s)}s`;
  if (m > 0) return `${m}m${pad2(s)}s`;
  return `${s}s`;
}

/** `2026-01-31 12:00:05Z`: a timestamp readable at a glance, still UTC. */
export function formatTime(iso: string | null): string {
  if (iso === null) return "-";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? sanitizeText(iso, 40) : `${date.toISOString().slice(0, 19).replace("T", " ")}Z`;
}

function cell(value: string, max: number): string {
  // Session data comes from shells: no escape sequences reach the terminal.
  const clean = sanitizeText(value, 1000) || "-";
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

function durationCell(session: SessionRecord, now: Date): string {
  if (session.duration_seconds !== null) return formatDuration(session.duration_seconds);
  if (session.status === "active") {
    return `${formatDuration((now.getTime() - new Date(session.started_at).getTime()) / 1000)}+`;
  }
  return "-";
}

export function formatTable(sessions: readonly SessionRecord[], now = new Date()): string {
  const header = ["SESSION", "COMPONENT", "HOST", "USER", "STATUS", "STARTED", "DURATION", "EXIT"];
  const rows = sessions.map((s) => [
    cell(s.session_id, 40),
    cell(s.component_name, 24),
    cell(s.hostname, 24),
    cell(s.username, 16),
    s.status,
    formatTime(s.started_at),
    durationCell(s, now),
    cell(s.exit_reason ?? "-", 16),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

const command = {
  name: "list",
  usage,
  options: {
    active: { type: "boolean" },
    status: { type: "string" },
    component: { type: "string" },
    host: { type: "string" },
    id: { type: "string" },
    limit: { type: "string" },
    store: { type: "string" },
    lease: { type: "string" },
    json: { type: "boolean" },
  },
} as const;

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(command, args);
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  let status: SessionStatus | undefined;
  if (values.status !== undefined) {
    const wanted = SessionStatus.safeParse(values.status);
    if (!wanted.success) return usageError(command, "--status must be one of active, ended, abandoned");
    status = wanted.data;
  }
  if (values.active) {
    if (status !== undefined && status !== "active") return usageError(command, "--active contradicts --status");
    status = "active";
  }
  if (values.component !== undefined && !COMPONENT_NAME_PATTERN.test(values.component)) {
    return usageError(command, "--component must match ^[a-zA-Z0-9_-]+$");
  }
  if (values.id !== undefined && (values.id === "" || values.id.length > 200)) {
    return usageError(command, "--id must be 1 to 200 characters");
  }
  const limit = values.limit === undefined ? LIST_LIMIT_DEFAULT : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > LIST_LIMIT_MAX) {
    return usageError(command, `--limit must be a whole number from 1 to ${LIST_LIMIT_MAX}`);
  }
  return withStore(command, values, async (store) => {
    const page = await store.listSessions({
      limit,
      ...(status !== undefined ? { status } : {}),
      ...(values.component !== undefined ? { component_name: values.component } : {}),
      ...(values.host !== undefined ? { hostname: values.host } : {}),
      ...(values.id !== undefined ? { id: values.id } : {}),
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(page.sessions, null, 2)}\n`);
    } else if (page.sessions.length === 0) {
      process.stdout.write(`no sessions${status !== undefined ? ` with status ${status}` : ""} in ${store.location}\n`);
    } else {
      process.stdout.write(formatTable(page.sessions));
      if (page.nextCursor !== null) {
        process.stderr.write(`(showing the newest ${limit}; raise --limit to see more)\n`);
      }
    }
    return 0;
  });
}
