/**
 * Handing the journals of processes that are gone to the spool.
 *
 * A journal (src/journal/) holds what its process wrote ahead; whatever it
 * holds without an acknowledgement is put into the spool (idempotently, by
 * event_id), and the journal is removed. A journal is claimed first by
 * renaming it, so two helpers never ingest the same one; a claim whose
 * claimer died is taken over.
 */
import { readdirSync, readFileSync, renameSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { sanitizeComponentName } from "../contract/index.ts";
import { JOURNAL_DIR_NAME, JOURNAL_SUFFIX, journalPid } from "../journal/journal.ts";
import { foldJournal, type PendingEvent, parseJournal, pendingEvents } from "../journal/records.ts";
import type { Logger } from "../log.ts";
import { endPayloadOf, startPayloadOf } from "./events.ts";
import type { Spool, SpoolInput } from "./spool.ts";

const CLAIM = ".ingest-";

export interface IngestSummary {
  journals: number;
  /** Events handed to the spool. */
  spooled: number;
  /** Events the spool had no room for (counted as lost there). */
  lost: number;
  /** Lines that could not be read. */
  unreadable: number;
}

/**
 * Whether a process of this host with that pid exists (signal 0 sends
 * nothing): only ESRCH says it does not; EPERM means it exists as another user's.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

function toInput(event: PendingEvent): SpoolInput {
  const start = event.session.start;
  const common = {
    startEventId: start.e,
    component: sanitizeComponentName(start.c),
    localSessionId: start.s,
    traceId: start.tr,
    spanId: start.sp,
    state: "pending" as const,
  };
  if (event.kind === "start") {
    return { ...common, eventId: start.e, kind: "start", payload: { ...startPayloadOf(start) } };
  }
  return {
    ...common,
    eventId: event.end.e,
    kind: "end",
    trackerSessionId: event.session.trackerSessionId,
    payload: { ...endPayloadOf(start, event.end) },
  };
}

/** Ingests one claimed journal file; the file is removed once the spool holds its events. */
function ingestClaimed(claimed: string, spool: Spool, log: Logger, summary: IngestSummary): void {
  const { lines, unreadable } = parseJournal(readFileSync(claimed, "utf8"));
  const state = foldJournal(lines, unreadable);
  const inputs: SpoolInput[] = [];
  for (const event of pendingEvents(state)) {
    try {
      inputs.push(toInput(event));
    } catch (error) {
      summary.lost++;
      log.warn(`lost a session_${event.kind} event from ${claimed}: ${(error as Error).message}`);
    }
  }
  const result = spool.put(inputs);
  summary.journals++;
  summary.spooled += result.stored.length;
  summary.lost += result.lost.length;
  summary.unreadable += unreadable;
  for (const { input, reason } of result.lost) log.warn(`lost session_${input.kind} ${input.eventId}: ${reason}`);
  if (unreadable > 0) log.warn(`${claimed}: ${unreadable} line(s) could not be read`);
  unlinkSync(claimed);
}

/** The journal directory beside a spool file. */
export function journalDirOf(spoolPath: string): string {
  return join(dirname(spoolPath), JOURNAL_DIR_NAME);
}

/**
 * The journals in `dir` that no living process answers for: those of
 * processes that are gone (and `own`, whose process is known to be gone),
 * and claims of helpers that died while ingesting.
 */
export function orphanJournals(dir: string, own?: string): { path: string; base: string }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const orphans: { path: string; base: string }[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const at = name.lastIndexOf(CLAIM);
    const base = at < 0 ? name : name.slice(0, at);
    if (!base.endsWith(JOURNAL_SUFFIX)) continue;
    const owner = at < 0 ? journalPid(base) : Number(name.slice(at + CLAIM.length));
    if (path === own || !processAlive(owner ?? 0)) orphans.push({ path, base });
  }
  return orphans;
}

/**
 * Hands the orphaned journals of `dir` to the spool (opened only if there
 * are any). Never throws for one bad journal: it is left in place and reported.
 */
export function ingestJournals(
  dir: string,
  openSpool: () => Spool | undefined,
  log: Logger,
  own?: string,
): IngestSummary {
  const summary: IngestSummary = { journals: 0, spooled: 0, lost: 0, unreadable: 0 };
  const orphans = orphanJournals(dir, own);
  const spool = orphans.length > 0 ? openSpool() : undefined;
  if (spool === undefined) return summary;
  for (const { path, base } of orphans) {
    const claimed = join(dir, `${base}${CLAIM}${process.pid}`);
    try {
      renameSync(path, claimed);
    } catch {
      // Claimed by another helper, or removed by its process, a moment ago.
      continue;
    }
    try {
      ingestClaimed(claimed, spool, log, summary);
    } catch (error) {
      log.warn(`could not hand the journal ${claimed} to the spool: ${(error as Error).message}`);
      try {
        renameSync(claimed, join(dir, base));
      } catch {
        // Left claimed: the next helper takes it over once this one is gone.
      }
    }
  }
  return summary;
}
