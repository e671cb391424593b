/**
 * Opening a store from the `--store` option: `sqlite:PATH` for one host, a
 * `postgres://` URL for several server instances sharing one database.
 */
import { join, resolve } from "node:path";
import { stateDir } from "../state-dir.ts";
import { sqliteStore } from "./sqlite.ts";
import type { SessionStore } from "./types.ts";

export type { EndOutcome, HeartbeatOutcome, ListPage, SessionStore, StartOutcome } from "./types.ts";

export const STORE_FILE_NAME = "tracker.db";

const ACCEPTED_FORMS =
  "use sqlite:PATH (e.g. sqlite:./tracker.db) or a PostgreSQL URL (e.g. postgres://tracker@db.example.com:5432/tracker)";

/** Names the scheme only: the rest of a URL may hold a password. */
function badSpec(what: string): Error {
  return new Error(`--store: ${what}; ${ACCEPTED_FORMS}`);
}

/** The embedded store in the state dir, when `--store` is not given. */
export function defaultStoreSpec(env: NodeJS.ProcessEnv = process.env): string {
  return `sqlite:${join(stateDir(env), STORE_FILE_NAME)}`;
}

/**
 * Opens the store `spec` names and brings its schema up to date. A relative
 * SQLite path is taken from the working directory; its directory is created.
 */
export interface OpenStoreOptions {
  /** PostgreSQL: bound on connecting, waiting for a pooled connection and each statement. */
  timeoutMs?: number;
}

export async function openStore(spec: string, options: OpenStoreOptions = {}): Promise<SessionStore> {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(spec)?.[1]?.toLowerCase();
  let store: SessionStore;
  if (scheme === "sqlite") {
    const path = spec.slice("sqlite:".length);
    if (path.length === 0) throw badSpec("sqlite: needs a file path");
    store = sqliteStore(path === ":memory:" ? path : resolve(path));
  } else if (scheme === "postgres" || scheme === "postgresql") {
    if (!URL.canParse(spec)) throw badSpec(`the ${scheme}: URL is malformed`);
    // Loaded only here: `pg` costs tens of milliseconds that SQLite users need not pay.
    const { postgresStore } = await import("./postgres.ts");
    store = postgresStore(spec, options);
  } else {
    throw badSpec(scheme === undefined ? "the value has no scheme" : `unsupported scheme "${scheme}:"`);
  }
  try {
    await store.migrate();
  } catch (error) {
    await store.close().catch(() => {});
    throw error;
  }
  return store;
}
