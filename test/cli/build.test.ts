/**
 * The `shell-sessions` bin stays executable after every build: `npm run build`
 * (also run by `npm test`'s pretest) and `npm pack` (which builds through
 * `prepare`). They run in a copy of the package, leaving the dist/ that other
 * tests spawn untouched.
 */
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { copyPackage, type PackageCopy, ROOT, runCommand, userEnv } from "./package-copy.ts";

const { version, bin } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  version: string;
  bin: Record<string, string>;
};
const BIN = bin["shell-sessions"] ?? "";

function isExecutable(file: string): boolean {
  return (statSync(file).mode & 0o111) === 0o111;
}

describe("the shell-sessions bin after a build", () => {
  let copy: PackageCopy;
  before(() => {
    copy = copyPackage();
  });
  after(() => copy.remove());

  it("package.json names dist/cli/main.js as the shell-sessions bin", () => {
    assert.equal(BIN, "dist/cli/main.js");
  });

  it("npm run build, then npx shell-sessions --version prints the package version", async () => {
    const build = await runCommand("npm", ["run", "build"], { cwd: copy.dir });
    assert.equal(build.code, 0, build.stderr);
    assert.ok(isExecutable(join(copy.dir, BIN)), `${BIN} is not executable after npm run build`);
    // yes=false: run the package's own bin or fail; never fetch one from the registry.
    const run = await runCommand("npx", ["shell-sessions", "--version"], {
      cwd: copy.dir,
      env: userEnv({ npm_config_yes: "false" }),
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${version}\n`);
  });

  it("npm pack leaves the bin executable, in dist/ and in the tarball", async () => {
    const pack = await runCommand("npm", ["pack", "--json"], { cwd: copy.dir });
    assert.equal(pack.code, 0, pack.stderr);
    assert.ok(isExecutable(join(copy.dir, BIN)), `${BIN} is not executable after npm pack`);
    const [{ filename }] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as [{ filename: string }];
    const listing = await runCommand("tar", ["-tvzf", filename, `package/${BIN}`], { cwd: copy.dir });
    assert.equal(listing.code, 0, listing.stderr);
    assert.match(listing.stdout, /^-rwxr-xr-x /, `tarball entry: ${listing.stdout}`);
  });

  it("the dist/ this suite runs against (built by npm test's pretest) has an executable bin", () => {
    assert.ok(isExecutable(join(ROOT, BIN)), `${join(ROOT, BIN)} is not executable: was it built by npm run build?`);
  });
});
