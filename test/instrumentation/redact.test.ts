/** The default redaction of captured shell inputs. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { applyRedactor, defaultRedact, REDACTED } from "../../src/instrumentation/redact.ts";

describe("defaultRedact masks what looks like a credential", () => {
  const cases: Array<[string, string, string]> = [
    [
      "password in an object",
      `db.login({ user: "admin", password: "hunter2" })`,
      `db.login({ user: "admin", password: "${REDACTED}" })`,
    ],
    ["secret: value", `vault.put({ secret: 'swordfish' })`, `vault.put({ secret: '${REDACTED}' })`],
    ["assignment to an API key", `process.env.API_KEY = 'abc123'`, `process.env.API_KEY = '${REDACTED}'`],
    ["token in a query string", `get("/orders?token=abc123&page=2")`, `get("/orders?token=${REDACTED}&page=2")`],
    ["bare password=", `connect password=s3cret host=db`, `connect password=${REDACTED} host=db`],
    [
      "Authorization: Bearer",
      `fetch(u, { headers: { Authorization: "Bearer abcdef123456" } })`,
      `fetch(u, { headers: { Authorization: "${REDACTED}" } })`,
    ],
    ["a Bearer credential on its own", `curl -H "Bearer abcdef123456"`, `curl -H "Bearer ${REDACTED}"`],
    [
      "a JWT",
      `verify("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")`,
      `verify("${REDACTED}")`,
    ],
    [
      "credentials in a URL",
      `pg.connect("postgres://app:s3cr3t@db:5432/orders")`,
      `pg.connect("postgres://app:${REDACTED}@db:5432/orders")`,
    ],
    ["an AWS access key id", `s3 = client("AKIAIOSFODNN7EXAMPLE")`, `s3 = client("${REDACTED}")`],
    [
      "an AWS secret access key",
      `aws.config({ region: "eu-west-1", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" })`,
      `aws.config({ region: "eu-west-1", secretAccessKey: "${REDACTED}" })`,
    ],
    ["a GitHub token", `gh.auth("ghp_abcdefghijklmnopqrstuvwxyz0123456789")`, `gh.auth("${REDACTED}")`],
    ["a long hex run", `hmac("0123456789abcdef0123456789abcdef")`, `hmac("${REDACTED}")`],
    ["an sk- key", `openai("sk-proj-abcdefghijklmnop1234")`, `openai("${REDACTED}")`],
    [
      "a private key block",
      "sign('-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----')",
      `sign('${REDACTED}')`,
    ],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => assert.equal(defaultRedact(input), expected));
  }

  test("ordinary inputs are left as they are", () => {
    for (const input of [
      "users.find({ name: 'alice' }).limit(10)",
      "inventory.take('W-1', 2)",
      "await db.query('select count(*) from sessions where status = $1', ['active'])",
      "const tokens = text.split(' ')",
      "Math.max(1, 2, 3)",
    ]) {
      assert.equal(defaultRedact(input), input);
    }
  });

  test("a random token of 32+ letters and digits never survives, wherever it appears", () => {
    const token = fc.stringMatching(/^[A-Za-z0-9]{32,64}$/).filter((s) => /[0-9]/.test(s) && /[A-Za-z]/.test(s));
    const around = fc.constantFrom(['call("', '")'], ["x = '", "'"], ["use ", " now"], ["[", "]"]);
    fc.assert(
      fc.property(token, around, (secret, [before, after]) => {
        assert.ok(!(defaultRedact(`${before}${secret}${after}`) ?? "").includes(secret));
      }),
    );
  });

  test("a password assigned under any sensitive key never survives", () => {
    const key = fc.constantFrom(
      "password",
      "passwd",
      "pwd",
      "secret",
      "token",
      "apiKey",
      "api_key",
      "clientSecret",
      "Authorization",
    );
    const value = fc.stringMatching(/^[A-Za-z0-9!#%*+./@^_~-]{4,24}$/);
    const style = fc.constantFrom(
      (k: string, v: string) => `${k}: "${v}"`,
      (k: string, v: string) => `${k}='${v}'`,
      (k: string, v: string) => `${k}=${v}`,
    );
    fc.assert(
      fc.property(key, value, style, (k, v, format) => {
        const out = defaultRedact(`login({ ${format(k, v)} })`) ?? "";
        assert.ok(out.includes(REDACTED), out);
        assert.ok(!out.includes(`${k}: "${v}"`) && !out.includes(`=${v}`) && !out.includes(`'${v}'`), out);
      }),
    );
  });
});

describe("applyRedactor", () => {
  test("a redactor that throws or returns something other than a string records nothing", () => {
    assert.equal(
      applyRedactor(() => {
        throw new Error("bad redactor");
      }, "x"),
      undefined,
    );
    assert.equal(
      applyRedactor(() => 42 as unknown as string, "x"),
      undefined,
    );
    assert.equal(
      applyRedactor(() => undefined, "x"),
      undefined,
    );
    assert.equal(
      applyRedactor((s) => s.toUpperCase(), "x"),
      "X",
    );
  });
});
