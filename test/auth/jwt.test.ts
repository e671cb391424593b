import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { SignJWT } from "jose";
import {
  AuthError,
  CLOCK_TOLERANCE_SECONDS,
  hasScope,
  MIN_SECRET_LENGTH,
  mintToken,
  SecretError,
  TokenVerifier,
  VERIFIED_TOKENS_KEPT,
  verifyToken,
} from "../../src/auth/jwt.ts";
import { findOrCreateSecret, findSecret, secretFilePath } from "../../src/auth/secret.ts";

const SECRET = "s".repeat(MIN_SECRET_LENGTH);
const OTHER_SECRET = "o".repeat(MIN_SECRET_LENGTH);
const key = (s: string) => new TextEncoder().encode(s);
const now = () => Math.floor(Date.now() / 1000);

async function rejectsWith(token: string, reason: string, secret = SECRET): Promise<void> {
  await assert.rejects(verifyToken(token, secret), (error: unknown) => {
    assert.ok(error instanceof AuthError, String(error));
    assert.equal(error.reason, reason, error.message);
    if (token !== "") assert.ok(!error.message.includes(token), "the error must not echo the token");
    return true;
  });
}

describe("component tokens", () => {
  test("a minted token verifies, naming its component", async () => {
    const token = await mintToken({ secret: SECRET, component: "mahavishnu", ttlSeconds: 60 });
    const verified = await verifyToken(token, SECRET);
    assert.equal(verified.component, "mahavishnu");
    assert.equal(verified.expiresAt - verified.issuedAt, 60);
    assert.equal(verified.scopes, undefined);
    assert.ok(hasScope(verified, "sessions:write"));
  });

  test("scopes restrict what a token may do", async () => {
    const token = await mintToken({ secret: SECRET, component: "c", scopes: ["sessions:read"] });
    const verified = await verifyToken(token, SECRET);
    assert.ok(hasScope(verified, "sessions:read"));
    assert.ok(!hasScope(verified, "sessions:write"));
  });

  test("malformed", () => rejectsWith("not.a.jwt", "malformed"));
  test("empty", () => rejectsWith("", "missing"));

  test("bad signature", async () => {
    await rejectsWith(await mintToken({ secret: OTHER_SECRET, component: "c" }), "bad_signature");
  });

  test('alg "none"', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const unsigned = `${b64({ alg: "none", typ: "JWT" })}.${b64({ iss: "c", aud: "session-buddy", iat: now(), exp: now() + 60 })}.`;
    await rejectsWith(unsigned, "algorithm");
  });

  test("expired (beyond the clock tolerance)", async () => {
    const token = await mintToken({ secret: SECRET, component: "c", ttlSeconds: 1, now: now() - 3600 });
    await rejectsWith(token, "expired");
  });

  test("not yet valid: iat in the future", async () => {
    const token = await mintToken({ secret: SECRET, component: "c", ttlSeconds: 7200, now: now() + 3600 });
    await rejectsWith(token, "not_yet_valid");
  });

  test("not yet valid: nbf in the future", async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("c")
      .setAudience("session-buddy")
      .setIssuedAt()
      .setNotBefore(now() + 3600)
      .setExpirationTime(now() + 7200)
      .sign(key(SECRET));
    await rejectsWith(token, "not_yet_valid");
  });

  test("wrong audience", async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("c")
      .setAudience("someone-else")
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(key(SECRET));
    await rejectsWith(token, "audience");
  });

  test("wrong issuer: not a component name, or missing", async () => {
    const bad = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("not a component!")
      .setAudience("session-buddy")
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(key(SECRET));
    await rejectsWith(bad, "issuer");
    const missing = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setAudience("session-buddy")
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(key(SECRET));
    await rejectsWith(missing, "claims");
  });

  test("exp and iat are required", async () => {
    const noExp = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("c")
      .setAudience("session-buddy")
      .setIssuedAt()
      .sign(key(SECRET));
    await rejectsWith(noExp, "claims");
    const noIat = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("c")
      .setAudience("session-buddy")
      .setExpirationTime("1h")
      .sign(key(SECRET));
    await rejectsWith(noIat, "claims");
  });

  test("a secret shorter than 32 characters is refused, without printing it", async () => {
    const short = "short-secret-123";
    await assert.rejects(mintToken({ secret: short, component: "c" }), (error: unknown) => {
      assert.ok(error instanceof SecretError);
      assert.match(error.message, /16 characters long; it must be at least 32/);
      assert.ok(!error.message.includes(short));
      return true;
    });
  });
});

test("a token living longer than the cap (366 days by default, or the caller's) is refused, whoever minted it", async () => {
  const secret = "s".repeat(MIN_SECRET_LENGTH);
  const now = Math.floor(Date.now() / 1000);
  const sign = (lifetime: number) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("mahavishnu")
      .setAudience("session-buddy")
      .setIssuedAt(now)
      .setExpirationTime(now + lifetime)
      .sign(new TextEncoder().encode(secret));
  await assert.rejects(verifyToken(await sign(400 * 86400), secret), (error: unknown) => {
    assert.ok(error instanceof AuthError);
    assert.equal(error.reason, "claims");
    assert.match(error.message, /limit of 366 days/);
    return true;
  });
  assert.equal((await verifyToken(await sign(365 * 86400), secret)).component, "mahavishnu");
  await assert.rejects(verifyToken(await sign(7200), secret, { maxLifetimeSeconds: 3600 }), /limit of 3600 s/);
});

describe("the shared secret", () => {
  const freshEnv = (): NodeJS.ProcessEnv => ({ SHELL_SESSIONS_STATE_DIR: mkdtempSync(join(tmpdir(), "sss-secret-")) });

  test("is generated once into the state dir with mode 0600, then read back", () => {
    const env = freshEnv();
    assert.equal(findSecret(env), undefined);
    const created = findOrCreateSecret(env);
    assert.equal(created.source, "generated");
    assert.ok(created.secret.length >= MIN_SECRET_LENGTH);
    const path = secretFilePath(env);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const again = findOrCreateSecret(env);
    assert.equal(again.source, "file");
    assert.equal(again.secret, created.secret);
    assert.equal(readFileSync(path, "utf8").trim(), created.secret);
  });

  test("SESSION_BUDDY_SECRET wins over the file; a short one is refused", () => {
    const env = freshEnv();
    findOrCreateSecret(env);
    assert.equal(findSecret({ ...env, SESSION_BUDDY_SECRET: SECRET })?.source, "env");
    assert.throws(() => findSecret({ ...env, SESSION_BUDDY_SECRET: "too-short" }), SecretError);
  });

  test("a secret file readable by others is used, with a warning naming the fix", () => {
    const env = freshEnv();
    writeFileSync(secretFilePath(env), `${SECRET}\n`, { mode: 0o644 });
    const found = findSecret(env);
    assert.equal(found?.secret, SECRET);
    assert.match(found?.warning ?? "", /chmod 600/);
  });
});

describe("a verifier that remembers what it verified", () => {
  const reasonOf = async (work: Promise<unknown>): Promise<string> => {
    try {
      await work;
      return "accepted";
    } catch (error) {
      assert.ok(error instanceof AuthError, String(error));
      return error.reason;
    }
  };

  test("a remembered token is refused once it has expired, at the same moment verifying it anew refuses it", async () => {
    const t0 = now();
    const token = await mintToken({ secret: SECRET, component: "c", ttlSeconds: 60, now: t0 });
    const verifier = new TokenVerifier(SECRET);
    assert.equal((await verifier.verify(token, t0)).component, "c");
    const lastGood = t0 + 60 + CLOCK_TOLERANCE_SECONDS - 1;
    assert.equal(await reasonOf(verifier.verify(token, lastGood)), "accepted");
    assert.equal(await reasonOf(verifyToken(token, SECRET, { now: lastGood })), "accepted");
    assert.equal(await reasonOf(verifier.verify(token, lastGood + 1)), "expired");
    assert.equal(await reasonOf(verifyToken(token, SECRET, { now: lastGood + 1 })), "expired");
  });

  test("a refusal is not remembered: a token not yet valid is accepted once it is", async () => {
    const t0 = now();
    const token = await mintToken({ secret: SECRET, component: "c", ttlSeconds: 600, now: t0 + 300 });
    const verifier = new TokenVerifier(SECRET);
    assert.equal(await reasonOf(verifier.verify(token, t0)), "not_yet_valid");
    assert.equal(await reasonOf(verifier.verify(token, t0 + 300)), "accepted");
  });

  test("a token signed with another secret, or over the lifetime cap, is refused every time", async () => {
    const verifier = new TokenVerifier(SECRET, { maxLifetimeSeconds: 3600 });
    const forged = await mintToken({ secret: OTHER_SECRET, component: "c" });
    const long = await mintToken({ secret: SECRET, component: "c", ttlSeconds: 7200 });
    for (let i = 0; i < 2; i++) {
      assert.equal(await reasonOf(verifier.verify(forged)), "bad_signature");
      assert.equal(await reasonOf(verifier.verify(long)), "claims");
    }
  });

  test("it keeps a bounded number of tokens, and one forgotten is verified again", async () => {
    const verifier = new TokenVerifier(SECRET);
    const first = await mintToken({ secret: SECRET, component: "first" });
    await verifier.verify(first);
    for (let i = 0; i < VERIFIED_TOKENS_KEPT; i++) {
      await verifier.verify(await mintToken({ secret: SECRET, component: `c${i}` }));
    }
    assert.equal(verifier.size, VERIFIED_TOKENS_KEPT);
    assert.equal((await verifier.verify(first)).component, "first");
    assert.equal(verifier.size, VERIFIED_TOKENS_KEPT);
  });
});
