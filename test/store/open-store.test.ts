import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { defaultStoreSpec, openStore } from "../../src/store/index.ts";

const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-open-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("the default store is tracker.db in the state dir", () => {
  assert.equal(defaultStoreSpec({ SHELL_SESSIONS_STATE_DIR: "/var/lib/shells" }), "sqlite:/var/lib/shells/tracker.db");
  assert.equal(
    defaultStoreSpec({ XDG_STATE_HOME: "/home/ops/.state" }),
    "sqlite:/home/ops/.state/otel-shell-sessions/tracker.db",
  );
});

test("sqlite:PATH opens and migrates a file; a relative path is taken from the working directory", async (t) => {
  const previous = process.cwd();
  process.chdir(dir);
  t.after(() => process.chdir(previous));
  const store = await openStore("sqlite:nested/dir/tracker.db");
  t.after(() => store.close());
  const path = join(dir, "nested", "dir", "tracker.db");
  assert.ok(existsSync(path));
  assert.equal(store.kind, "sqlite");
  assert.equal(store.location, `sqlite:${path}`);
  assert.equal(await store.countEvents(), 0, "the schema is in place");
});

test("sqlite::memory: is an in-process store", async (t) => {
  const store = await openStore("sqlite::memory:");
  t.after(() => store.close());
  assert.equal(await store.countActive(), 0);
});

test("a bad --store value is refused naming the option, the scheme only, and the accepted forms", async () => {
  const cases: [string, RegExp][] = [
    ["mysql://admin:hunter2-secret@db.example.com/tracker", /unsupported scheme "mysql:"/],
    ["tracker.db", /has no scheme/],
    ["hunter2-secret", /has no scheme/],
    ["sqlite:", /sqlite: needs a file path/],
    ["postgres://admin:hunter2-secret@[not-a-host/tracker", /postgres: URL is malformed/],
  ];
  for (const [spec, reason] of cases) {
    await assert.rejects(openStore(spec), (error: Error) => {
      assert.match(error.message, /^--store: /);
      assert.match(error.message, reason);
      assert.match(error.message, /sqlite:PATH \(e\.g\. sqlite:\.\/tracker\.db\)/);
      assert.match(error.message, /postgres:\/\/tracker@db\.example\.com:5432\/tracker/);
      assert.doesNotMatch(error.message, /hunter2|admin/);
      return true;
    });
  }
});

test("an unreachable PostgreSQL fails to open without leaking the password", async () => {
  // Port 1 on loopback: nothing listens there, so the connection is refused at once.
  await assert.rejects(openStore("postgresql://tracker:hunter2-secret@127.0.0.1:1/tracker"), (error: Error) => {
    assert.doesNotMatch(String(error.message), /hunter2/);
    return true;
  });
});
