/** `shell-sessions token`: mint a JWT for a component from the shared secret. */
import {
  AuthError,
  DEFAULT_TOKEN_TTL_SECONDS,
  MAX_TOKEN_TTL_SECONDS,
  mintToken,
  SCOPE_READ,
  SCOPE_WRITE,
  SecretError,
} from "../../auth/jwt.ts";
import { findSecret, secretFilePath } from "../../auth/secret.ts";
import { COMPONENT_NAME_PATTERN } from "../../contract/schemas.ts";
import { parseDuration } from "../../server/options.ts";
import { parseCommandArgs, usageError } from "../args.ts";

const KNOWN_SCOPES = [SCOPE_READ, SCOPE_WRITE, "*"];

export const usage = `Usage: shell-sessions token --component NAME [--ttl DURATION] [--scopes LIST]

Mint an HS256 JWT for a component, signed with the shared secret (the same
one the tracker server uses). Prints only the token, so that this works:

  export SESSION_BUDDY_TOKEN=$(shell-sessions token --component mahavishnu)

Options:
  --component NAME   the component the token is for (its iss claim); letters,
                     digits, '_' and '-'. Required. The token may only touch
                     this component's sessions.
  --ttl DURATION     how long the token is valid: seconds (3600) or with a unit
                     s, m, h, d (90m, 24h, 7d). Default 24h; at most 366d.
  --scopes LIST      comma-separated scopes to restrict the token to:
                     ${SCOPE_WRITE} (start, heartbeat, end), ${SCOPE_READ} (list, get).
                     Default: no scopes claim, which allows both.
  -h, --help         show this help

Environment:
  SESSION_BUDDY_SECRET      the shared secret (at least 32 characters). If unset,
                            the secret file that \`shell-sessions serve\` generated in the
                            state dir is used.
  SHELL_SESSIONS_STATE_DIR  the state dir (default $XDG_STATE_HOME/otel-shell-sessions,
                            else ~/.local/state/otel-shell-sessions)

Examples:
  shell-sessions token --component mahavishnu
  shell-sessions token --component oneiric --ttl 7d --scopes ${SCOPE_WRITE}
`;

/** Seconds from `3600`, `90m`, `24h`, `7d`; undefined when unreadable or out of range. */
export function parseTtl(text: string): number | undefined {
  return parseDuration(text, MAX_TOKEN_TTL_SECONDS);
}

const command = {
  name: "token",
  usage,
  options: {
    component: { type: "string" },
    ttl: { type: "string" },
    scopes: { type: "string" },
  },
} as const;

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(command, args);
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const component = values.component;
  if (component === undefined) return usageError(command, "--component is required");
  if (!COMPONENT_NAME_PATTERN.test(component)) {
    return usageError(
      command,
      "--component must match ^[a-zA-Z0-9_-]+$ (letters, digits, '_' and '-'), e.g. mahavishnu",
    );
  }
  const ttlSeconds = values.ttl === undefined ? DEFAULT_TOKEN_TTL_SECONDS : parseTtl(values.ttl);
  if (ttlSeconds === undefined) {
    return usageError(command, "--ttl must be a positive duration of at most 366d, such as 3600, 90m, 24h or 7d");
  }
  let scopes: string[] | undefined;
  if (values.scopes !== undefined) {
    scopes = values.scopes
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    const unknown = scopes.filter((s) => !KNOWN_SCOPES.includes(s));
    if (scopes.length === 0 || unknown.length > 0) {
      return usageError(command, `--scopes takes a comma-separated list of ${KNOWN_SCOPES.join(", ")}`);
    }
  }

  let secret: string;
  try {
    const found = findSecret();
    if (!found) {
      process.stderr.write(
        `shell-sessions token: no secret found. Set SESSION_BUDDY_SECRET (at least 32 characters), or start \`shell-sessions serve\` once to generate ${secretFilePath()}\n`,
      );
      return 1;
    }
    if (found.warning) process.stderr.write(`shell-sessions token: warning: ${found.warning}\n`);
    secret = found.secret;
  } catch (error) {
    if (error instanceof SecretError) {
      process.stderr.write(`shell-sessions token: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  try {
    const token = await mintToken({ secret, component, ttlSeconds, ...(scopes ? { scopes } : {}) });
    process.stdout.write(`${token}\n`);
    return 0;
  } catch (error) {
    if (error instanceof AuthError || error instanceof SecretError) {
      process.stderr.write(`shell-sessions token: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
