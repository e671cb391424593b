/** `shell-sessions spool`: show what waits in the local spool, or deliver it now. */
import type { DrainSummary, SessionDelivery, SpoolStats, TransportSpec } from "../../exporter/index.ts";
import type { SalvageRecord, Spool as SpoolFile, SpoolRow } from "../../exporter/spool.ts";
import { parseCommandArgs, usageError } from "../args.ts";

export const usage = `Usage: shell-sessions spool [--json] [--limit N]
       shell-sessions spool drain [--url URL | --command CMD] [--timeout SECONDS]

Session events that could not be delivered to the tracker when they happened
(tracker down or slow, credentials refused, the shell exiting) wait in a local
spool: one SQLite file in the state dir. Any later program using
otel-shell-sessions on this host delivers them in the background; this command
shows them, or delivers them now.

  spool                 list waiting events: counts per state, the oldest one's age,
                        and per event its type, component, session, attempts and last error;
                        the events lost and those salvaged from a damaged spool file
    --json              the same as JSON
    --limit N           list at most N events (default 50)

  spool drain           deliver every waiting event now, in order (a session's start
                        before its end), including ones rejected before (after you fixed
                        the credentials). Prints a summary; exits 0 when nothing is left,
                        1 when events are still waiting (it says how many and why), 2 on
                        bad usage.
    --url URL           tracker over Streamable HTTP (default: $SESSION_BUDDY_URL,
                        else http://127.0.0.1:8678/mcp)
    --command CMD       spawn the tracker over stdio instead (default: $SESSION_BUDDY_COMMAND),
                        e.g. --command "shell-sessions serve --stdio"
    --timeout SECONDS   stop starting new deliveries after this long (default 60)

Environment:
  SHELL_SESSIONS_STATE_DIR   where the spool lives (default: $XDG_STATE_HOME/otel-shell-sessions,
                             else ~/.local/state/otel-shell-sessions)
  SESSION_BUDDY_TOKEN        a JWT to send; else one is minted from SESSION_BUDDY_SECRET or
                             from the local tracker's generated secret
  SHELL_SESSIONS_LOG         debug | info | warn | error | silent (default warn)

Examples:
  shell-sessions spool
  shell-sessions spool drain --timeout 30
  SESSION_BUDDY_TOKEN=$(shell-sessions token --component mahavishnu) shell-sessions spool drain
`;

const listCommand = {
  name: "spool",
  usage,
  options: { json: { type: "boolean" }, limit: { type: "string" } },
} as const;

const drainCommand = {
  name: "spool drain",
  usage,
  options: { url: { type: "string" }, command: { type: "string" }, timeout: { type: "string" } },
} as const;

export async function run(args: string[]): Promise<number> {
  if (args[0] === "drain") return drain(args.slice(1));
  const parsed = parseCommandArgs(listCommand, args);
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  let limit = 50;
  if (values.limit !== undefined) {
    if (!/^\d+$/.test(values.limit) || Number(values.limit) < 1 || Number(values.limit) > 100_000) {
      return usageError(listCommand, "--limit must be a whole number from 1 to 100000");
    }
    limit = Number(values.limit);
  }
  return show(values.json === true, limit);
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

async function show(json: boolean, limit: number): Promise<number> {
  const { Spool, spoolPathFor } = await import("../../exporter/index.ts");
  const path = spoolPathFor(process.env);
  if (!Spool.exists(path)) return showNoSpool(json, path);
  let spool: SpoolFile;
  try {
    spool = openForCli(Spool, path);
  } catch (error) {
    return cannotRead(path, error);
  }
  try {
    const listing = readListing(spool, limit);
    process.stdout.write(json ? jsonListing(path, listing, spool.quarantined(limit)) : textListing(path, listing));
    return 0;
  } catch (error) {
    return cannotRead(path, error);
  } finally {
    spool.close();
  }
}

function cannotRead(path: string, error: unknown): number {
  process.stderr.write(`shell-sessions spool: cannot read the spool ${path}: ${(error as Error).message}\n`);
  return 1;
}

/** No spool file at all: the same answer as an empty one, without creating the file. */
function showNoSpool(json: boolean, path: string): number {
  if (json) {
    const empty = { path, pending: 0, rejected: 0, quarantined: 0, lost: 0, salvaged: 0, oldest_age_seconds: null };
    process.stdout.write(`${JSON.stringify({ ...empty, events: [], salvages: [] }, null, 2)}\n`);
  } else {
    process.stdout.write(`The spool is empty (no spool at ${path}).\n`);
  }
  return 0;
}

/** One waiting event as listed; the field names are those of the JSON output. */
interface ListedEvent {
  seq: number;
  type: string;
  state: string;
  component: string;
  session: string;
  trace_id: string | null;
  event_id: string;
  age_seconds: number;
  attempts: number;
  last_error: string | null;
}

interface Listing {
  stats: SpoolStats;
  events: ListedEvent[];
  /** Age in seconds of the oldest waiting event; null when none waits. */
  oldest: number | null;
  salvages: SalvageRecord[];
}

function readListing(spool: SpoolFile, limit: number): Listing {
  const stats = spool.stats();
  const rows = spool.batch(0, limit);
  const now = Date.now();
  const events = rows.map((r) => listedEvent(r, now));
  const oldest = stats.oldestCreatedAt === null ? null : Math.round((now - stats.oldestCreatedAt) / 1000);
  return { stats, events, oldest, salvages: spool.salvages(limit) };
}

function listedEvent(r: SpoolRow, now: number): ListedEvent {
  return {
    seq: r.seq,
    type: r.kind === "start" ? "session_start" : r.kind === "end" ? "session_end" : r.kind,
    state: r.state,
    component: r.component,
    session: r.trackerSessionId ?? r.localSessionId ?? r.startEventId,
    trace_id: r.traceId,
    event_id: r.eventId,
    age_seconds: Math.round((now - r.createdAt) / 1000),
    attempts: r.attempts,
    last_error: r.lastError,
  };
}

function jsonListing(path: string, listing: Listing, quarantine: ReturnType<SpoolFile["quarantined"]>): string {
  const { stats, oldest, events, salvages } = listing;
  return `${JSON.stringify({ path, ...stats, oldest_age_seconds: oldest, events, quarantine, salvages }, null, 2)}\n`;
}

function textListing(path: string, { stats, events, oldest, salvages }: Listing): string {
  const waiting = stats.pending + stats.rejected;
  const lines = [
    `Spool: ${path}`,
    `Waiting: ${waiting} (pending ${stats.pending}, rejected ${stats.rejected})` +
      (oldest !== null ? `, oldest ${age(oldest * 1000)} old` : ""),
    `Quarantined: ${stats.quarantined}   Lost: ${stats.lost}   Salvaged: ${stats.salvaged}`,
    ...salvages.map(
      (r) =>
        `Damaged spool file replaced ${new Date(r.at).toISOString()}: salvaged ${r.salvaged}, lost ${r.lost ?? "unknown (nothing in it was readable)"}; kept at ${r.aside}`,
    ),
  ];
  if (events.length > 0) {
    lines.push("", ...eventTable(events));
    if (waiting > events.length) lines.push(`… and ${waiting - events.length} more (use --limit)`);
  }
  if (waiting > 0) lines.push("", "Deliver them now with: shell-sessions spool drain");
  return `${lines.join("\n")}\n`;
}

/** The events as a table: a header and one line per event, columns padded to line up (the last one is not). */
function eventTable(events: ListedEvent[]): string[] {
  const header = ["SEQ", "TYPE", "STATE", "COMPONENT", "SESSION", "AGE", "ATTEMPTS", "LAST ERROR"];
  const table = events.map((e) => [
    String(e.seq),
    e.type,
    e.state,
    e.component,
    e.session,
    age(e.age_seconds * 1000),
    String(e.attempts),
    (e.last_error ?? "").slice(0, 80),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
  const fmt = (row: string[]) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd();
  return [fmt(header), ...table.map(fmt)];
}

type SpoolClass = typeof SpoolFile;

/** The spool for reading here: no bounds (nothing is written but a salvage), warnings to stderr. */
function openForCli(Spool: SpoolClass, path: string): SpoolFile {
  return Spool.open(path, {
    limits: { maxEvents: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER },
    onWarning: (m) => process.stderr.write(`shell-sessions spool: ${m}\n`),
  });
}

/**
 * What is still waiting, read from the spool itself rather than taken from
 * the drain's summary (which cannot see a spool it failed to read), with the
 * reason the oldest waiting event gave; undefined when nothing waits.
 */
function stillWaiting(Spool: SpoolClass, path: string): { count: number; why: string } | undefined {
  let spool: SpoolFile | undefined;
  try {
    spool = openForCli(Spool, path);
    const stats = spool.stats();
    const count = stats.pending + stats.rejected;
    if (count === 0) return undefined;
    const [oldest] = spool.batch(0, 1);
    const why =
      stats.rejected > 0
        ? `${stats.rejected} rejected by the tracker${oldest?.lastError ? ` (${oldest.lastError})` : ""}`
        : oldest?.lastError
          ? `the last attempt failed: ${oldest.lastError}`
          : "not attempted before the timeout";
    return { count, why };
  } catch (error) {
    return { count: Number.NaN, why: `the spool cannot be read: ${(error as Error).message}` };
  } finally {
    spool?.close();
  }
}

async function drain(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(drainCommand, args);
  if (typeof parsed === "number") return parsed;
  const { createLogger, describeTransport, resolveDeliveryOptions, SessionDelivery, Spool } = await import(
    "../../exporter/index.ts"
  );
  const flags = await readDrainFlags(parsed.values);
  if (typeof flags === "number") return flags;
  const { timeoutSeconds, transport } = flags;
  // An explicit drain runs even where background delivery is switched off.
  const env = { ...process.env, SHELL_SESSIONS_DELIVERY: "on" };
  const log = createLogger();
  const resolved = resolveDeliveryOptions(env, transport ? { transport } : {});
  for (const problem of resolved.problems) log.warn(problem.message);
  if (!resolved.enabled) {
    process.stderr.write(`shell-sessions spool drain: ${resolved.reason}\n`);
    return 2;
  }
  const options = resolved.options;
  if (!Spool.exists(options.spoolPath)) {
    process.stdout.write(`Nothing to deliver (no spool at ${options.spoolPath}).\n`);
    return 0;
  }
  const delivery = new SessionDelivery({ options, log, mode: "drain" });
  const tty = process.stderr.isTTY === true;
  const progress = (total: DrainTotals, pass: DrainSummary) => {
    if (tty) {
      process.stderr.write(
        `\rdelivering to ${describeTransport(options.transport)}: ${total.delivered + pass.delivered} delivered, ${total.rejected + pass.rejected} rejected, ${total.failed + pass.failed} failed`,
      );
    }
  };
  let outcome: { total: DrainTotals; busy: boolean };
  try {
    outcome = await drainPasses(delivery, Date.now() + timeoutSeconds * 1000, progress);
  } finally {
    if (tty) process.stderr.write("\r\x1b[K");
    await delivery.shutdown();
  }
  return reportDrain(outcome, Spool, options.spoolPath);
}

/** `spool drain`'s flags, checked; a number is the exit code of a usage error already reported. */
async function readDrainFlags(values: {
  url?: string | undefined;
  command?: string | undefined;
  timeout?: string | undefined;
}): Promise<number | { timeoutSeconds: number; transport: TransportSpec | undefined }> {
  const { parseCommand, parseUrl } = await import("../../exporter/options.ts");
  if (values.url !== undefined && values.command !== undefined) {
    return usageError(drainCommand, "give either --url or --command, not both");
  }
  let timeoutSeconds = 60;
  if (values.timeout !== undefined) {
    const n = Number(values.timeout);
    if (!/^\d+(\.\d+)?$/.test(values.timeout) || !(n > 0) || n > 86_400) {
      return usageError(
        drainCommand,
        "--timeout must be a number of seconds greater than 0 and at most 86400, such as 60",
      );
    }
    timeoutSeconds = n;
  }
  let transport: TransportSpec | undefined;
  try {
    if (values.url !== undefined) transport = { kind: "http", url: parseUrl(values.url, "--url") };
    if (values.command !== undefined) transport = { kind: "stdio", ...parseCommand(values.command, "--command") };
  } catch (error) {
    return usageError(drainCommand, (error as Error).message);
  }
  return { timeoutSeconds, transport };
}

/** What the passes of one `spool drain` did, summed over them. */
type DrainTotals = Omit<DrainSummary, "busy">;

/**
 * Drain passes until nothing waits, a pass delivers nothing, or the deadline
 * passes; `busy` when another process held the spool to the end.
 */
async function drainPasses(
  delivery: SessionDelivery,
  deadline: number,
  progress: (total: DrainTotals, pass: DrainSummary) => void,
): Promise<{ total: DrainTotals; busy: boolean }> {
  const total: DrainTotals = { delivered: 0, rejected: 0, failed: 0, quarantined: 0, waiting: 0 };
  let busy = false;
  for (let pass = 0; ; pass++) {
    const summary = await delivery.drain({ now: true, deadline, onProgress: (_done, s) => progress(total, s) });
    busy = summary.busy;
    if (busy && Date.now() < deadline) {
      // Another process is draining: wait for its pass to end rather than fail at once.
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    total.delivered += summary.delivered;
    total.rejected += summary.rejected;
    total.failed += summary.failed;
    total.quarantined += summary.quarantined;
    total.waiting = summary.waiting;
    // Another pass helps only when this one made progress (an end waiting for a start delivered late).
    if (busy || summary.waiting === 0 || summary.delivered === 0 || Date.now() >= deadline || pass >= 200) break;
  }
  return { total, busy };
}

/** Prints the drain's summary; returns 0 when nothing is left waiting, else 1 (with why). */
function reportDrain({ total, busy }: { total: DrainTotals; busy: boolean }, Spool: SpoolClass, path: string): number {
  if (busy) {
    process.stderr.write("shell-sessions spool drain: another process is draining this spool now; try again shortly\n");
    return 1;
  }
  const left = stillWaiting(Spool, path);
  const waiting = left === undefined ? 0 : Number.isNaN(left.count) ? "unknown" : left.count;
  const parts = [`delivered ${total.delivered}`, `rejected ${total.rejected}`, `still waiting ${waiting}`];
  if (total.quarantined > 0) parts.push(`quarantined ${total.quarantined}`);
  process.stdout.write(`${parts.join(", ")}\n`);
  if (left !== undefined) {
    const how = Number.isNaN(left.count) ? "events may still be waiting" : `${left.count} event(s) still waiting`;
    process.stderr.write(`shell-sessions spool drain: ${how}: ${left.why}; see them with: shell-sessions spool\n`);
    return 1;
  }
  return 0;
}
