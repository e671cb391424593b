/**
 * The lines of a write-ahead journal, and what a journal says once read back.
 *
 * A journal is one process's append-only file of JSON lines. The start and
 * end of every shell are written to it synchronously, before the prompt and
 * on every way out; later lines say what became of each event (acknowledged
 * by the tracker, or handed to the spool). Whatever a journal holds without
 * such a line is what its process could not deliver, and is what the drain
 * helper ingests into the spool once the process is gone.
 *
 * Pure functions over plain data: the writer, the helper and the tests share them.
 */

/** What is known of the shell when it starts (the description may be refined by a `describe` line). */
export interface StartLine {
  k: "start";
  /** `session.id` (local). */
  s: string;
  /** event_id of the start. */
  e: string;
  tr: string;
  sp: string;
  /** Epoch milliseconds. */
  at: number;
  pid: number;
  user?: string | undefined;
  home?: string | undefined;
  host?: string | undefined;
  cwd?: string | undefined;
  plat: string;
  /** Node.js version. */
  rv: string;
  /** Whether stdin is a terminal. */
  i?: boolean | undefined;
  c: string;
  st: string;
  ver?: string | undefined;
  ad?: string[] | undefined;
}

export interface DescribeLine {
  k: "describe";
  s: string;
  c: string;
  st: string;
  ver?: string | undefined;
  ad?: string[] | undefined;
}

/** The session span's ids, when they differ from the ones written ahead. */
export interface TraceLine {
  k: "trace";
  s: string;
  tr: string;
  sp: string;
}

export interface EndLine {
  k: "end";
  s: string;
  /** event_id of the end. */
  e: string;
  at: number;
  /** Exit reason (the contract's ExitReason). */
  r: string;
  /** The process's exit code, when the process was exiting. */
  x?: number | undefined;
  n: number;
  ne: number;
}

/** The tracker acknowledged an event; for a start, `t` is the tracker's session id. */
export interface AckLine {
  k: "ack";
  e: string;
  t?: string | undefined;
}

/** The event is in the spool now, which answers for it from here on. */
export interface SpooledLine {
  k: "spooled";
  e: string;
}

export type JournalLine = StartLine | DescribeLine | TraceLine | EndLine | AckLine | SpooledLine;

/** One shell as its journal tells it. */
export interface JournaledSession {
  start: StartLine;
  end: EndLine | undefined;
  /** The tracker's session id, once the start was acknowledged. */
  trackerSessionId: string | undefined;
}

export interface JournalState {
  sessions: Map<string, JournaledSession>;
  /** Event ids that were acknowledged or spooled. */
  settled: Set<string>;
  /** Lines that could not be read (a line torn by a crash mid-write, or damage). */
  unreadable: number;
}

const KINDS = new Set(["start", "describe", "trace", "end", "ack", "spooled"]);

function isLine(value: unknown): value is JournalLine {
  if (typeof value !== "object" || value === null) return false;
  const line = value as { k?: unknown; s?: unknown; e?: unknown };
  if (typeof line.k !== "string" || !KINDS.has(line.k)) return false;
  if (line.k === "ack" || line.k === "spooled") return typeof line.e === "string";
  if (typeof line.s !== "string") return false;
  return line.k === "describe" || line.k === "trace" || typeof line.e === "string";
}

export function parseJournal(text: string): { lines: JournalLine[]; unreadable: number } {
  const lines: JournalLine[] = [];
  let unreadable = 0;
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    try {
      const value: unknown = JSON.parse(raw);
      if (isLine(value)) lines.push(value);
      else unreadable++;
    } catch {
      unreadable++;
    }
  }
  return { lines, unreadable };
}

/** Folds the lines in order into the state of each session. */
export function foldJournal(lines: readonly JournalLine[], unreadable = 0): JournalState {
  const sessions = new Map<string, JournaledSession>();
  const byStartEvent = new Map<string, JournaledSession>();
  const settled = new Set<string>();
  for (const line of lines) {
    switch (line.k) {
      case "start": {
        const session: JournaledSession = { start: { ...line }, end: undefined, trackerSessionId: undefined };
        sessions.set(line.s, session);
        byStartEvent.set(line.e, session);
        break;
      }
      case "describe": {
        const session = sessions.get(line.s);
        if (session) Object.assign(session.start, { c: line.c, st: line.st, ver: line.ver, ad: line.ad });
        break;
      }
      case "trace": {
        const session = sessions.get(line.s);
        if (session) Object.assign(session.start, { tr: line.tr, sp: line.sp });
        break;
      }
      case "end": {
        const session = sessions.get(line.s);
        if (session && session.end === undefined) session.end = line;
        break;
      }
      case "ack": {
        settled.add(line.e);
        const session = byStartEvent.get(line.e);
        if (session && line.t !== undefined) session.trackerSessionId = line.t;
        break;
      }
      case "spooled":
        settled.add(line.e);
        break;
    }
  }
  return { sessions, settled, unreadable };
}

export type PendingEvent =
  | { kind: "start"; session: JournaledSession }
  | { kind: "end"; session: JournaledSession; end: EndLine };

/** The events nobody has answered for yet, each start before its end. */
export function pendingEvents(state: JournalState): PendingEvent[] {
  const pending: PendingEvent[] = [];
  for (const session of state.sessions.values()) {
    if (!state.settled.has(session.start.e)) pending.push({ kind: "start", session });
    const end = session.end;
    if (end !== undefined && !state.settled.has(end.e)) pending.push({ kind: "end", session, end });
  }
  return pending;
}
