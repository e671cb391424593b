/** Scopes when a call carries both a Bearer header and a token argument: each must allow the call. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { mintToken, verifyToken } from "../../src/auth/jwt.ts";
import { ContractError } from "../../src/contract/errors.ts";
import { authenticate, requireScope } from "../../src/server/auth.ts";

const SECRET = "k".repeat(40);
const mode = { kind: "jwt", secret: SECRET } as const;

async function identityFor(headerScopes: string[] | undefined, argumentScopes: string[] | undefined) {
  const header = await verifyToken(await mintToken({ secret: SECRET, component: "c", scopes: headerScopes }), SECRET);
  const argument = await mintToken({ secret: SECRET, component: "c", scopes: argumentScopes });
  return authenticate(mode, { header, argument });
}

const allows = (identity: Awaited<ReturnType<typeof identityFor>>, scope: string) => {
  try {
    requireScope(identity, scope, "track_session_start");
    return true;
  } catch (error) {
    assert.ok(error instanceof ContractError);
    assert.equal(error.code, "permission_denied");
    return false;
  }
};

test("a call is allowed only when the header and the argument both allow it", async () => {
  assert.equal(allows(await identityFor(["sessions:write"], ["sessions:write"]), "sessions:write"), true);
  assert.equal(allows(await identityFor(["sessions:read"], ["sessions:write"]), "sessions:write"), false);
  assert.equal(allows(await identityFor(["sessions:write"], ["sessions:read"]), "sessions:write"), false);
  assert.equal(allows(await identityFor(undefined, ["sessions:read"]), "sessions:write"), false);
  assert.equal(allows(await identityFor(["sessions:read"], undefined), "sessions:write"), false);
  assert.equal(allows(await identityFor(undefined, undefined), "sessions:write"), true);
});

test('"*" on either side allows what the other side allows', async () => {
  assert.equal(allows(await identityFor(["sessions:write"], ["*"]), "sessions:write"), true);
  assert.equal(allows(await identityFor(["*"], ["sessions:write"]), "sessions:write"), true);
  assert.equal(allows(await identityFor(["*"], ["sessions:read"]), "sessions:write"), false);
});
