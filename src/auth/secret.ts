/**
 * Finding the shared secret: `SESSION_BUDDY_SECRET`, else the file the local
 * tracker generated in the state dir (mode 0600, as Jupyter keeps its token),
 * so shells of the same user on the same host authenticate with no set-up.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureStateDir, stateDir } from "../state-dir.ts";
import { assertSecret } from "./jwt.ts";

export const SECRET_FILE_NAME = "secret";

export type SecretSource = "env" | "file" | "generated";

export interface ResolvedSecret {
  secret: string;
  source: SecretSource;
  /** The file it came from or went to, for `file` and `generated`. */
  path?: string;
  /** Set when the file is readable by others than its owner. */
  warning?: string;
}

export function secretFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), SECRET_FILE_NAME);
}

function readSecretFile(path: string): ResolvedSecret | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const secret = assertSecret(text, `the secret in ${path}`);
  const mode = statSync(path).mode & 0o777;
  const warning =
    (mode & 0o077) !== 0
      ? `${path} is readable by other users (mode ${mode.toString(8)}); run: chmod 600 ${path}`
      : undefined;
  return { secret, source: "file", path, ...(warning ? { warning } : {}) };
}

/** The configured secret, or undefined when none exists yet. Throws SecretError on a short one. */
export function findSecret(env: NodeJS.ProcessEnv = process.env): ResolvedSecret | undefined {
  const fromEnv = env.SESSION_BUDDY_SECRET;
  if (fromEnv !== undefined && fromEnv !== "") {
    return { secret: assertSecret(fromEnv), source: "env" };
  }
  return readSecretFile(secretFilePath(env));
}

/** The configured secret, generating one into the state dir if there is none. */
export function findOrCreateSecret(env: NodeJS.ProcessEnv = process.env): ResolvedSecret {
  const found = findSecret(env);
  if (found) return found;
  ensureStateDir(env);
  const path = secretFilePath(env);
  const secret = randomBytes(32).toString("base64url");
  try {
    // `wx`: if another process created it first, use theirs.
    writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      const theirs = readSecretFile(path);
      if (theirs) return theirs;
    }
    throw error;
  }
  return { secret, source: "generated", path };
}
