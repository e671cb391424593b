/**
 * Who is calling, and what they may touch.
 *
 * A call's credentials are the Bearer header (HTTP, verified before the MCP
 * layer sees the request), the `token` argument (Session-Buddy style), and
 * over stdio the `SESSION_BUDDY_TOKEN` the server was started with (the MCP
 * spec's "credentials from the environment"). Every token given is verified;
 * the identity is the token's component (`iss`), and a token may only touch
 * its own component's sessions.
 *
 * Errors name the token field and what is wrong with it, never the token.
 */

import { AuthError, hasScope, TokenVerifier, type VerifiedToken } from "../auth/jwt.ts";
import { ContractError } from "../contract/errors.ts";
import type { AuthMode } from "./options.ts";

export interface Identity {
  component: string;
  /** Every token the call carried; each must allow what the call does. */
  tokens: Pick<VerifiedToken, "scopes">[];
}

export interface CallCredentials {
  /** The verified Bearer header, when the request came over HTTP with one. */
  header?: VerifiedToken | undefined;
  /** The raw `token` argument, whatever its type. */
  argument?: unknown;
  /** The token the stdio server was started with. */
  environment?: string | undefined;
}

const HOW_TO_GET_ONE = "mint one with `shell-sessions token --component NAME`";

function unauthenticated(field: string, reason: string, message: string): ContractError {
  return new ContractError("unauthenticated", `unauthenticated: ${field}: ${message} (${reason})`, [
    { field, constraint: message, received: reason === "missing" ? "nothing" : "a string" },
  ]);
}

type JwtMode = Extract<AuthMode, { kind: "jwt" }>;

/** One verifier (and so one cache of verified tokens) per server's auth settings. */
const verifiers = new WeakMap<JwtMode, TokenVerifier>();

/** Verifies `token` under the server's settings; throws AuthError. */
export function verifyWith(mode: JwtMode, token: string): Promise<VerifiedToken> {
  let verifier = verifiers.get(mode);
  if (verifier === undefined) {
    verifier = new TokenVerifier(mode.secret, { maxLifetimeSeconds: mode.maxTokenTtlSeconds });
    verifiers.set(mode, verifier);
  }
  return verifier.verify(token);
}

async function verifyField(field: string, token: string, mode: JwtMode): Promise<VerifiedToken> {
  try {
    return await verifyWith(mode, token);
  } catch (error) {
    if (error instanceof AuthError) throw unauthenticated(field, error.reason, error.message);
    throw error;
  }
}

/**
 * The caller's identity, or null when authentication is disabled. Throws a
 * ContractError `unauthenticated` (no usable token) or `permission_denied`
 * (header and argument name different components).
 */
export async function authenticate(mode: AuthMode, credentials: CallCredentials): Promise<Identity | null> {
  if (mode.kind === "disabled") return null;
  const { header, argument, environment } = credentials;
  let fromArgument: VerifiedToken | undefined;
  // `token: null` is "no token", as in Session-Buddy (`token: str | None = None`).
  if (argument !== undefined && argument !== null) {
    if (typeof argument !== "string") {
      throw new ContractError("unauthenticated", "unauthenticated: token: must be a JWT string", [
        { field: "token", constraint: "must be a JWT string", received: typeof argument },
      ]);
    }
    fromArgument = await verifyField("token", argument, mode);
  }
  if (header && fromArgument && header.component !== fromArgument.component) {
    throw new ContractError(
      "permission_denied",
      `permission_denied: token: the Authorization header is for component "${header.component}" but the token argument is for "${fromArgument.component}"; send tokens of one component`,
      [
        {
          field: "token",
          constraint: "must be for the same component as the Authorization header",
          received: "a string",
        },
      ],
    );
  }
  const chosen =
    fromArgument ??
    header ??
    (environment !== undefined ? await verifyField("SESSION_BUDDY_TOKEN", environment, mode) : undefined);
  if (!chosen) {
    throw unauthenticated(
      "token",
      "missing",
      `no token was given; send "Authorization: Bearer <jwt>" or the token argument (${HOW_TO_GET_ONE})`,
    );
  }
  // A scoped header must allow the call too, not only the argument that wins.
  const tokens = header && fromArgument ? [fromArgument, header] : [chosen];
  return { component: chosen.component, tokens };
}

export function requireScope(identity: Identity | null, scope: string, tool: string): void {
  if (identity === null) return;
  if (!identity.tokens.every((token) => hasScope(token, scope))) {
    throw new ContractError(
      "permission_denied",
      `permission_denied: token: ${tool} needs the scope "${scope}", which this token does not have; mint one with --scopes ${scope}`,
      [{ field: "token", constraint: `must carry the scope "${scope}"`, received: "a string" }],
    );
  }
}

/**
 * A token may only touch its own component's sessions. The answer for
 * another component's session is `permission_denied`, even though that
 * confirms the id exists: ids are 128 random bits, so whoever holds one
 * learned it from the session's own shell, and a clear answer tells an
 * operator that the token was minted for the wrong component.
 */
export function requireComponent(identity: Identity | null, component: string, field: string): void {
  if (identity === null || identity.component === component) return;
  throw new ContractError(
    "permission_denied",
    `permission_denied: ${field}: this token is for component "${identity.component}" and may not touch sessions of component "${component}"`,
    [{ field, constraint: `must belong to the token's component "${identity.component}"`, received: "a string" }],
  );
}
