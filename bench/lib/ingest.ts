/**
 * Tracker ingest: session events per second that concurrent clients get
 * acknowledged over HTTP, beside the no-op peer's calls per second with the
 * same clients and payloads, and a raw `node:sqlite` loop inserting the rows
 * the tracker writes for those events.
 */
import { join } from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { validateEndEvent, validateStartEvent } from "../../src/contract/tools.ts";
import { openStore } from "../../src/store/index.ts";
import { endFacts, newSessionValues, startLogValues } from "../../src/store/records.ts";
import { insertEventSql, insertSessionSql } from "../../src/store/sql.ts";
import { endPayload, startPayload } from "../../test/helpers/mcp-client.ts";
import { NOOP_TOOL } from "./peer.ts";

/** One client's work: one call, resolving to the number of events it had acknowledged (one unless a batch). */
type Step = (client: Client) => Promise<number | undefined>;

function structured(result: unknown): Record<string, unknown> {
  return ((result as { structuredContent?: Record<string, unknown> }).structuredContent ?? {}) as Record<
    string,
    unknown
  >;
}

/** Each client alternates a start and the end of that session, as a shell does. */
export function trackerSteps(): (client: Client) => Step {
  return () => {
    let open: string | undefined;
    return async (client) => {
      if (open === undefined) {
        const result = structured(
          await client.callTool({ name: "track_session_start", arguments: startPayload({ component_name: "bench" }) }),
        );
        if (result.status !== "tracked") throw new Error(`start refused: ${JSON.stringify(result)}`);
        open = String(result.session_id);
      } else {
        const result = structured(await client.callTool({ name: "track_session_end", arguments: endPayload(open) }));
        if (result.status !== "ended") throw new Error(`end refused: ${JSON.stringify(result)}`);
        open = undefined;
      }
    };
  };
}

/**
 * Each client alternates one `track_session_events` call with `size` starts
 * and one with the ends of those sessions: what the exporter sends when many
 * events are ready at once.
 */
export function trackerBatchSteps(size: number): (client: Client) => Step {
  return () => {
    let open: string[] = [];
    return async (client) => {
      const events =
        open.length === 0
          ? Array.from({ length: size }, () => startPayload({ component_name: "bench" }))
          : open.map((id) => endPayload(id));
      const result = structured(await client.callTool({ name: "track_session_events", arguments: { events } }));
      const results = (result.results ?? []) as Record<string, unknown>[];
      const want = open.length === 0 ? "tracked" : "ended";
      if (result.status !== "ok" || results.length !== size || results.some((r) => r.status !== want)) {
        throw new Error(`batch refused: ${JSON.stringify(result).slice(0, 500)}`);
      }
      open = want === "tracked" ? results.map((r) => String(r.session_id)) : [];
      return size;
    };
  };
}

/** The same alternation of payloads, to the no-op tool. */
export function peerSteps(): (client: Client) => Step {
  return () => {
    let i = 0;
    const start = startPayload({ component_name: "bench" });
    const end = endPayload("sess_peer");
    return async (client) => {
      await client.callTool({ name: NOOP_TOOL, arguments: i++ % 2 === 0 ? start : end });
    };
  };
}

/**
 * Events per second over `windowMs` with `clients` each running its steps back
 * to back. Only steps finished inside the window count; a short warm-up
 * before it is not counted.
 */
export async function sustainedRate(
  clients: Client[],
  stepsFor: (client: Client) => Step,
  windowMs: number,
  warmupMs: number,
): Promise<number> {
  const began = performance.now();
  const windowStart = began + warmupMs;
  const windowEnd = windowStart + windowMs;
  let counted = 0;
  await Promise.all(
    clients.map(async (client) => {
      const step = stepsFor(client);
      while (performance.now() < windowEnd) {
        const events = (await step(client)) ?? 1;
        const now = performance.now();
        if (now >= windowStart && now <= windowEnd) counted += events;
      }
    }),
  );
  return counted / (windowMs / 1000);
}

export interface RawInsertFigures {
  rowsPerSecond: number;
  /** Each session is three rows (its row, its start and its end in the event log) for two events. */
  eventsPerSecond: number;
  rows: number;
}

/**
 * The rows `sessions` start/end pairs make in the tracker's SQLite store,
 * inserted with the store's own SQL into a file with its schema and settings:
 * each statement its own transaction ("autocommit"), or all in one.
 */
export async function rawInserts(
  dir: string,
  sessions: number,
  mode: "autocommit" | "transaction",
): Promise<RawInsertFigures> {
  const path = join(dir, `raw-${mode}-${Date.now()}.db`);
  await (await openStore(`sqlite:${path}`)).close();
  const db = new DatabaseSync(path, { enableForeignKeyConstraints: true });
  try {
    db.exec("PRAGMA journal_mode = WAL");
    const p = (n: number) => `?${n}`;
    const insertSession = db.prepare(insertSessionSql(p));
    const insertEvent = db.prepare(insertEventSql(p));
    const now = new Date();
    const rows: { session: SQLInputValue[]; start: SQLInputValue[]; end: SQLInputValue[] }[] = [];
    for (let i = 0; i < sessions; i++) {
      const start = validateStartEvent(startPayload({ component_name: "bench" }));
      const session = newSessionValues(start, now);
      const sessionId = String(session[0]);
      rows.push({
        session,
        start: startLogValues(start, sessionId, now),
        end: endFacts(validateEndEvent(endPayload(sessionId)), now).log,
      });
    }
    const began = performance.now();
    if (mode === "transaction") db.exec("BEGIN");
    for (const row of rows) {
      insertSession.run(...row.session);
      insertEvent.run(...row.start);
      insertEvent.run(...row.end);
    }
    if (mode === "transaction") db.exec("COMMIT");
    const seconds = (performance.now() - began) / 1000;
    return {
      rowsPerSecond: (rows.length * 3) / seconds,
      eventsPerSecond: (rows.length * 2) / seconds,
      rows: rows.length * 3,
    };
  } finally {
    db.close();
  }
}
