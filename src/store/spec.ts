/**
 * The grammar of a store spec (`--store`, `$SHELL_SESSIONS_STORE`), apart from
 * opening it: the CLI checks a flag with it before anything starts, without
 * loading a database driver.
 */
export type StoreSpec = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string };

const ACCEPTED_FORMS =
  "use sqlite:PATH (e.g. sqlite:./tracker.db) or a PostgreSQL URL (e.g. postgres://tracker@db.example.com:5432/tracker)";

/** Names the scheme only: the rest of a URL may hold a password. */
function badSpec(what: string): Error {
  return new Error(`--store: ${what}; ${ACCEPTED_FORMS}`);
}

/** The store `spec` names; throws an Error saying what is wrong and which forms are accepted. */
export function parseStoreSpec(spec: string): StoreSpec {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(spec)?.[1]?.toLowerCase();
  if (scheme === "sqlite") {
    const path = spec.slice("sqlite:".length);
    if (path.length === 0) throw badSpec("sqlite: needs a file path");
    return { kind: "sqlite", path };
  }
  if (scheme === "postgres" || scheme === "postgresql") {
    if (!URL.canParse(spec)) throw badSpec(`the ${scheme}: URL is malformed`);
    return { kind: "postgres", url: spec };
  }
  throw badSpec(scheme === undefined ? "the value has no scheme" : `unsupported scheme "${scheme}:"`);
}
