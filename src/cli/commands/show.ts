/** `shell-sessions show`: every field of one tracked session, reading the store directly. */
import { sanitizeText } from "../../contract/sanitize.ts";
import type { SessionRecord } from "../../contract/schemas.ts";
import { DEFAULT_LEASE_SECONDS, ENV_LEASE_SECONDS, ENV_STORE } from "../../server/options.ts";
import { parseCommandArgs, usageError } from "../args.ts";
import { withStore } from "../store-access.ts";
import { formatDuration, formatTable } from "./list.ts";

export const usage = `Usage: shell-sessions show ID [options]

Show every field of one tracked session, reading the tracker's store directly.
ID is any id of the session: the tracker's id (sess_…), its trace id (32 hex
digits), or the session id the shell's banner prints.

Options:
  --json              print the session as JSON
  --store SPEC        sqlite:PATH or a postgres:// URL (default $${ENV_STORE},
                      else sqlite:<state dir>/tracker.db)
  --lease SECONDS     the lease to apply first (default $${ENV_LEASE_SECONDS}, else ${DEFAULT_LEASE_SECONDS})
  -h, --help          show this help

Examples:
  shell-sessions show sess_3q2H0bRk1n7cWmZl0sY4xA
  shell-sessions show 4bf92f3577b34da6a3ce929d0e0e4736 --json
  shell-sessions show 235a96f4-1c2d-4e5f-8a9b-0c1d2e3f4a5b
`;

/** Sessions one id may name at most before `show` asks for a sharper one. */
const MAX_MATCHES = 10;

function text(value: unknown, indent: string): string {
  if (value === null || value === undefined) return "-";
  if (typeof value === "object") {
    // JSON escapes control characters itself; continuation lines line up under the value column.
    return JSON.stringify(value, null, 2).replace(/\n/g, `\n${indent}`);
  }
  return sanitizeText(String(value), 2000) || "-";
}

export function formatSession(session: SessionRecord): string {
  const rows: [string, unknown][] = [
    ["session_id", session.session_id],
    ["status", session.status],
    ["component", session.component_name],
    ["shell_type", session.shell_type],
    ["host", session.hostname],
    ["pid", session.pid],
    ["user", session.username],
    ["home", session.home],
    ["cwd", session.cwd],
    ["platform", session.platform],
    ["runtime", session.python_version],
    ["trace_id", session.trace_id],
    ["started_at", session.started_at],
    ["last_seen_at", session.last_seen_at],
    ["ended_at", session.ended_at],
    ["duration", session.duration_seconds === null ? null : formatDuration(session.duration_seconds)],
    ["duration_seconds", session.duration_seconds],
    ["exit_reason", session.exit_reason],
    ["start_event_id", session.start_event_id],
    ["metadata", session.metadata],
    ["end_metadata", session.end_metadata],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const indent = " ".repeat(width + 2);
  return `${rows.map(([k, v]) => `${k.padEnd(width)}  ${text(v, indent)}`).join("\n")}\n`;
}

const command = {
  name: "show",
  usage,
  options: {
    json: { type: "boolean" },
    store: { type: "string" },
    lease: { type: "string" },
  },
  allowPositionals: true,
} as const;

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(command, args);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (positionals.length !== 1 || positionals[0] === "") return usageError(command, "give exactly one ID");
  const id = positionals[0] as string;
  if (id.length > 200) return usageError(command, "ID must be at most 200 characters");
  return withStore(command, values, async (store) => {
    const { sessions } = await store.listSessions({ id, limit: MAX_MATCHES });
    const [session, ...others] = sessions;
    if (!session) {
      process.stderr.write(
        `shell-sessions show: no session with id "${sanitizeText(id, 100)}" in ${store.location} (tracker, trace or shell session id); see \`shell-sessions list\` for the ids\n`,
      );
      return 1;
    }
    if (others.length > 0) {
      process.stderr.write(
        `shell-sessions show: "${sanitizeText(id, 100)}" names ${sessions.length} sessions; show one by its tracker id:\n${formatTable(sessions)}`,
      );
      return 1;
    }
    process.stdout.write(values.json ? `${JSON.stringify(session, null, 2)}\n` : formatSession(session));
    return 0;
  });
}
