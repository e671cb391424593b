/**
 * Writing each shell's start and end ahead, into the process's journal
 * (src/journal/), at the moment they happen and before anything else: the
 * start before the first prompt is drawn, the end on every way out. This is
 * what makes a session impossible to run unrecorded: whatever then happens
 * to the process, the drain helper finds these lines.
 *
 * Light, like everything on the way to the first prompt: node built-ins only.
 */
import { Journal } from "../journal/journal.ts";
import type { DescribeLine } from "../journal/records.ts";
import { isDeliveryOff } from "../journal/switch.ts";
import { registry } from "./registry.ts";
import type { ShellSession } from "./session.ts";
import { type ResolvedShell, sameShell } from "./shell.ts";

// Through process.getBuiltinModule: an ES module import of node:os costs its facade before the prompt.
const { homedir, hostname, userInfo } = process.getBuiltinModule("node:os");

function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    // A fact that cannot be read (no passwd entry, a deleted cwd) is left out, never fatal.
    return undefined;
  }
}

/** The process's open journal, made on first use; undefined when delivery is off. */
function journal(session: ShellSession): Journal | undefined {
  const reg = registry();
  if (isDeliveryOff(process.env.SHELL_SESSIONS_DELIVERY)) return undefined;
  if (reg.journal === undefined || reg.journal.closed) {
    // Named after its first session's start event: random, so a reused pid never reuses a file.
    reg.journal = new Journal(process.env, session.ids.startEventId.replaceAll("-", "").slice(0, 16));
  }
  return reg.journal;
}

/** Writes the session's start (synchronously, durably), and starts the drain helper once the prompt is up. */
export function writeStart(session: ShellSession): void {
  const target = journal(session);
  if (target === undefined) return;
  const shell = session.shell;
  session.startLine = {
    k: "start",
    s: session.ids.localId,
    e: session.ids.startEventId,
    tr: session.traceIds.traceId,
    sp: session.traceIds.spanId,
    at: session.startTime,
    pid: process.pid,
    user: attempt(() => userInfo().username),
    home: attempt(() => homedir()),
    host: attempt(() => hostname()),
    cwd: attempt(() => process.cwd()),
    plat: `${process.platform}-${process.arch}`,
    rv: process.versions.node,
    i: attempt(() => process.getBuiltinModule("node:tty").isatty(0)),
    c: shell.component,
    st: shell.shellType,
    ver: shell.version,
    ad: shell.adapters.length > 0 ? shell.adapters : undefined,
  };
  target.write(session.startLine);
  session.journal = target;
  // After the prompt is drawn: starting a process costs milliseconds the prompt need not wait for.
  setImmediate(() => target.ensureHelper()).unref();
}

/** Records a refined description of the shell (a component's own options, the instrumentation's config). */
export function writeDescription(session: ShellSession, before: ResolvedShell): void {
  const shell = session.shell;
  if (session.journal === undefined || session.startLine === undefined || sameShell(before, shell)) return;
  const line: DescribeLine = {
    k: "describe",
    s: session.ids.localId,
    c: shell.component,
    st: shell.shellType,
    ver: shell.version,
    ad: shell.adapters.length > 0 ? shell.adapters : undefined,
  };
  // The start line held in memory is what the live delivery sends: kept as a reader of the journal would fold it.
  Object.assign(session.startLine, { c: line.c, st: line.st, ver: line.ver, ad: line.ad });
  session.journal.write(line);
}

/** Records the ids of the session's span when the tracer chose others than the ones written ahead. */
export function writeTrace(session: ShellSession): void {
  if (session.journal === undefined || session.startLine === undefined) return;
  const { traceId, spanId } = session.traceIds;
  Object.assign(session.startLine, { tr: traceId, sp: spanId });
  session.journal.write({ k: "trace", s: session.ids.localId, tr: traceId, sp: spanId });
}

export function writeEnd(session: ShellSession): void {
  if (session.journal === undefined || session.endEventId === undefined) return;
  session.endLine = {
    k: "end",
    s: session.ids.localId,
    e: session.endEventId,
    at: session.endTime ?? Date.now(),
    r: session.exitReason ?? "closed",
    x: session.exitCode,
    n: session.evalCount,
    ne: session.evalErrorCount,
  };
  session.journal.write(session.endLine);
}

/**
 * The process is leaving: its journal is removed if everything in it was
 * answered for, and otherwise left to the drain helper (started now if it
 * was not yet).
 */
export function leaveJournal(): void {
  registry().journal?.retire(true);
}
