/**
 * Component tokens, compatible with Session-Buddy's: HS256 JWTs signed with a
 * shared secret of at least 32 characters, `aud` "session-buddy", `iss` the
 * component, `exp` and `iat` required, optional `scopes`.
 *
 * Errors say what is wrong with a token, never what the token or the secret is.
 */
import { randomUUID } from "node:crypto";
import { errors, jwtVerify, SignJWT } from "jose";
import { COMPONENT_NAME_PATTERN } from "../contract/schemas.ts";

export const AUDIENCE = "session-buddy";
export const ALGORITHM = "HS256";
export const MIN_SECRET_LENGTH = 32;
export const DEFAULT_TOKEN_TTL_SECONDS = 24 * 60 * 60;
/** The longest lifetime (exp - iat) a token may have: `token` mints no longer, and the server accepts no longer by default. */
export const MAX_TOKEN_TTL_SECONDS = 366 * 24 * 60 * 60;
/** Allowed difference between our clock and the minting host's, for exp, nbf and iat. */
export const CLOCK_TOLERANCE_SECONDS = 60;

export const SCOPE_WRITE = "sessions:write";
export const SCOPE_READ = "sessions:read";

export type AuthErrorReason =
  | "missing"
  | "malformed"
  | "bad_signature"
  | "algorithm"
  | "expired"
  | "not_yet_valid"
  | "audience"
  | "issuer"
  | "claims"
  | "scope"
  | "component_mismatch";

export class AuthError extends Error {
  override readonly name = "AuthError";
  readonly reason: AuthErrorReason;
  constructor(reason: AuthErrorReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** A misconfigured secret: refused at start-up, not per request. */
export class SecretError extends Error {
  override readonly name = "SecretError";
}

export function assertSecret(secret: string | undefined, source = "SESSION_BUDDY_SECRET"): string {
  if (secret === undefined || secret.length === 0) {
    throw new SecretError(`${source} is not set`);
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new SecretError(
      `${source} is ${secret.length} characters long; it must be at least ${MIN_SECRET_LENGTH}. ` +
        `Generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"`,
    );
  }
  return secret;
}

const keyOf = (secret: string) => new TextEncoder().encode(secret);

export interface MintOptions {
  secret: string;
  component: string;
  ttlSeconds?: number;
  scopes?: readonly string[];
  /** Seconds since the epoch; defaults to now. */
  now?: number;
}

export async function mintToken(options: MintOptions): Promise<string> {
  const secret = assertSecret(options.secret);
  if (!COMPONENT_NAME_PATTERN.test(options.component)) {
    throw new AuthError("issuer", "component must match ^[a-zA-Z0-9_-]+$");
  }
  const ttl = options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isFinite(ttl) || ttl <= 0) throw new AuthError("claims", "ttl must be a positive number of seconds");
  const now = Math.floor(options.now ?? Date.now() / 1000);
  const jwt = new SignJWT(options.scopes ? { scopes: [...options.scopes] } : {})
    .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
    .setIssuer(options.component)
    .setAudience(AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.floor(ttl))
    .setJti(randomUUID());
  return jwt.sign(keyOf(secret));
}

export interface VerifiedToken {
  component: string;
  scopes: string[] | undefined;
  issuedAt: number;
  expiresAt: number;
}

function fromJose(error: unknown): AuthError {
  if (error instanceof errors.JWTExpired) return new AuthError("expired", "token has expired");
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return new AuthError("algorithm", `token must be signed with ${ALGORITHM}`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new AuthError("bad_signature", "token signature is invalid for this server's secret");
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === "missing") {
      return new AuthError("claims", `token lacks the required claim "${error.claim}" (exp, iat and iss are required)`);
    }
    switch (error.claim) {
      case "aud":
        return new AuthError("audience", `token audience must be "${AUDIENCE}"`);
      case "nbf":
      case "iat":
        return new AuthError("not_yet_valid", "token is not yet valid (nbf or iat is in the future)");
      case "iss":
        return new AuthError("issuer", "token issuer (iss) must be the component name");
      default:
        return new AuthError("claims", `token claim "${error.claim}" is missing or invalid (${error.reason})`);
    }
  }
  return new AuthError("malformed", "token is not a well-formed JWT");
}

export interface VerifyOptions {
  clockToleranceSeconds?: number;
  /** Refuse tokens whose lifetime (exp - iat) is longer. Default: MAX_TOKEN_TTL_SECONDS. */
  maxLifetimeSeconds?: number | undefined;
  /** Seconds since the epoch; defaults to now. */
  now?: number;
}

export async function verifyToken(token: string, secret: string, options: VerifyOptions = {}): Promise<VerifiedToken> {
  if (token.length === 0) throw new AuthError("missing", "no token was given");
  const tolerance = options.clockToleranceSeconds ?? CLOCK_TOLERANCE_SECONDS;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, keyOf(secret), {
      algorithms: [ALGORITHM],
      audience: AUDIENCE,
      requiredClaims: ["exp", "iat", "iss"],
      clockTolerance: tolerance,
      currentDate: new Date(now * 1000),
    }));
  } catch (error) {
    throw fromJose(error);
  }
  const { iss, iat, exp, scopes } = payload;
  if (typeof iss !== "string" || !COMPONENT_NAME_PATTERN.test(iss)) {
    throw new AuthError("issuer", "token issuer (iss) must be a component name matching ^[a-zA-Z0-9_-]+$");
  }
  // jose checks iat only against a maximum age; a token minted in the future is not valid yet.
  if (typeof iat !== "number" || iat > now + tolerance) {
    throw new AuthError("not_yet_valid", "token is not yet valid (iat is in the future)");
  }
  // However it was minted (another tool, a leaked secret), a token lives at most this long here.
  const maxLifetime = options.maxLifetimeSeconds ?? MAX_TOKEN_TTL_SECONDS;
  if (typeof exp !== "number" || exp - iat > maxLifetime) {
    throw new AuthError(
      "claims",
      `token lifetime (exp - iat) is over this tracker's limit of ${formatSeconds(maxLifetime)}; mint a shorter-lived one (shell-sessions token --ttl)`,
    );
  }
  if (scopes !== undefined && !(Array.isArray(scopes) && scopes.every((s) => typeof s === "string"))) {
    throw new AuthError("claims", 'token claim "scopes" must be an array of strings');
  }
  return { component: iss, scopes: scopes as string[] | undefined, issuedAt: iat, expiresAt: exp as number };
}

/** Verified tokens a {@link TokenVerifier} keeps at most; past it the oldest is forgotten. */
export const VERIFIED_TOKENS_KEPT = 1024;

/**
 * {@link verifyToken} under one secret and one set of options, remembering
 * what it verified until it expires. A client sends the same token with
 * every call, often twice (the Authorization header and the `token`
 * argument), and each HMAC check is a round trip through WebCrypto's thread
 * pool: 12% of the tracker's time at 32 clients. Only successes are kept,
 * keyed by the whole token; a remembered one is checked against the clock
 * again, so it stops being accepted exactly when verifying it anew would
 * refuse it (expiry; a token not yet valid, or refused, is never kept).
 */
export class TokenVerifier {
  readonly #secret: string;
  readonly #options: Omit<VerifyOptions, "now">;
  readonly #verified = new Map<string, VerifiedToken>();

  constructor(secret: string, options: Omit<VerifyOptions, "now"> = {}) {
    this.#secret = secret;
    this.#options = options;
  }

  /** How many verified tokens are remembered. */
  get size(): number {
    return this.#verified.size;
  }

  async verify(token: string, now = Math.floor(Date.now() / 1000)): Promise<VerifiedToken> {
    const known = this.#verified.get(token);
    const tolerance = this.#options.clockToleranceSeconds ?? CLOCK_TOLERANCE_SECONDS;
    // The same test jose applies to exp: expired once exp <= now - tolerance.
    if (known !== undefined && known.expiresAt > now - tolerance) return known;
    this.#verified.delete(token);
    const verified = await verifyToken(token, this.#secret, { ...this.#options, now });
    if (this.#verified.size >= VERIFIED_TOKENS_KEPT) {
      const oldest = this.#verified.keys().next().value;
      if (oldest !== undefined) this.#verified.delete(oldest);
    }
    this.#verified.set(token, verified);
    return verified;
  }
}

function formatSeconds(seconds: number): string {
  if (seconds % 86400 !== 0) return `${seconds} s`;
  return seconds === 86400 ? "1 day" : `${seconds / 86400} days`;
}

/** Tokens without `scopes` may do anything to their own component's sessions. */
export function hasScope(token: Pick<VerifiedToken, "scopes">, scope: string): boolean {
  return token.scopes === undefined || token.scopes.includes(scope) || token.scopes.includes("*");
}
