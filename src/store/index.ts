/**
 * Opening a store from the `--store` option: `sqlite:PATH` for one host, a
 * `postgres://` URL for several server instances sharing one database.
 */
import { join, resolve } from "node:path";
import { stateDir } from "../state-dir.ts";
import { parseStoreSpec } from "./spec.ts";
import { sqliteStore } from "./sqlite.ts";
import type { SessionStore } from "./types.ts";

export type { EndOutcome, HeartbeatOutcome, ListPage, SessionStore, StartOutcome } from "./types.ts";

export const STORE_FILE_NAME = "tracker.db";

export const PG_MISSING =
  "--store: a postgres:// store needs the pg package, which is not installed (it is an optional peer dependency): run npm install pg";

function missingPg(error: unknown): boolean {
  const { code, message } = error as NodeJS.ErrnoException;
  return code === "ERR_MODULE_NOT_FOUND" && /['"]pg['"]/.test(String(message));
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
  const parsed = parseStoreSpec(spec);
  let store: SessionStore;
  if (parsed.kind === "sqlite") {
    store = sqliteStore(parsed.path === ":memory:" ? parsed.path : resolve(parsed.path));
  } else {
    // Loaded only here: `pg` costs tens of milliseconds that SQLite users need not pay, and it is an
    // optional peer dependency that only PostgreSQL users install.
    const { postgresStore } = await import("./postgres.ts").catch((error: unknown) => {
      throw missingPg(error) ? new Error(PG_MISSING) : error;
    });
    store = postgresStore(parsed.url, options);
  }
  try {
    await store.migrate();
  } catch (error) {
    await store.close().catch(() => {});
    throw error;
  }
  return store;
}
