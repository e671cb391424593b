import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { checkNodeVersion } from "../src/cli/node-version.ts";

test("tests run on Node >= 22.15 (the node devDependency, whatever the system node is)", () => {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  assert.ok(major > 22 || (major === 22 && minor >= 15), `running on Node ${process.versions.node}`);
  assert.equal(checkNodeVersion(process.versions.node), undefined);
});

test("the CLI refuses an old Node with a message that says what to do", () => {
  assert.match(checkNodeVersion("20.20.2") ?? "", /needs Node\.js >= 22\.15 \(this is 20\.20\.2\).*npm start/);
  assert.equal(checkNodeVersion("22.15.0"), undefined);
  assert.match(checkNodeVersion("22.14.9") ?? "", /needs/);
});

test("shell-sessions --help lists every subcommand and exits 0; an unknown one exits 2 with usage", () => {
  const cli = new URL("../dist/cli/main.js", import.meta.url).pathname;
  const help = execFileSync(process.execPath, [cli, "--help"], { encoding: "utf8" });
  for (const name of ["serve", "shell", "list", "show", "token", "spool"]) {
    assert.match(help, new RegExp(`^  ${name} `, "m"));
  }
  try {
    execFileSync(process.execPath, [cli, "frobnicate"], { encoding: "utf8", stdio: "pipe" });
    assert.fail("unknown subcommand should fail");
  } catch (error) {
    const e = error as { status: number; stderr: string };
    assert.equal(e.status, 2);
    assert.match(e.stderr, /unknown command "frobnicate"/);
    assert.match(e.stderr, /Usage: shell-sessions <command>/);
  }
});
