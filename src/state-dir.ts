/**
 * Where this package keeps its local state (the generated secret, the
 * embedded store, the spool): `$SHELL_SESSIONS_STATE_DIR`, else the XDG state
 * home, else `~/.local/state`.
 */
// Through process.getBuiltinModule: the journal reads the state dir on the way to the first prompt, where an
// ES module import of a built-in costs its facade.
const { mkdirSync } = process.getBuiltinModule("node:fs");
const { homedir } = process.getBuiltinModule("node:os");
const { join } = process.getBuiltinModule("node:path");

export const STATE_DIR_NAME = "otel-shell-sessions";

export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SHELL_SESSIONS_STATE_DIR) return env.SHELL_SESSIONS_STATE_DIR;
  const xdg = env.XDG_STATE_HOME;
  // The XDG spec says a relative path is invalid and must be ignored.
  if (xdg?.startsWith("/")) return join(xdg, STATE_DIR_NAME);
  return join(homedir(), ".local", "state", STATE_DIR_NAME);
}

/** The state dir, created (owner-only) if missing. */
export function ensureStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = stateDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
