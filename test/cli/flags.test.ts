/**
 * Misuse of any subcommand's flags: exit 2, the problem in plain words (no
 * parser jargon such as "ambiguous"), the subcommand's usage on stderr, and
 * nothing changed (no secret generated, no store created).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLI_PATH } from "../helpers/tracker.ts";

interface Misuse {
  args: string[];
  /** What the message must say. */
  says: RegExp;
}

const MISUSES: Misuse[] = [
  { args: ["serve", "--store", "foo"], says: /--store: the value has no scheme; use sqlite:PATH/ },
  { args: ["serve", "--store", "sqlite:"], says: /--store: sqlite: needs a file path/ },
  { args: ["serve", "--lease", "-1"], says: /--lease must be a number of seconds greater than 0/ },
  { args: ["serve", "--port", "-5"], says: /--port must be a whole number from 0 to 65535/ },
  { args: ["serve", "--stdio=yes"], says: /--stdio takes no value/ },
  { args: ["list", "--store", "mysql://db/x"], says: /--store: unsupported scheme "mysql:"/ },
  { args: ["list", "--lease", "-1"], says: /--lease must be a number of seconds greater than 0/ },
  { args: ["list", "--limit", "-3"], says: /--limit must be a whole number from 1 to/ },
  { args: ["show", "--store", "foo", "sess_x"], says: /--store: the value has no scheme/ },
  { args: ["token", "--component", "billing", "--ttl", "-1"], says: /--ttl must be a positive duration/ },
  { args: ["token", "--component"], says: /--component needs a value$/m },
  { args: ["token", "--component", "--ttl", "3"], says: /--component needs a value, not the option --ttl/ },
  { args: ["spool", "--limit", "-2"], says: /--limit must be a whole number from 1 to/ },
  { args: ["spool", "drain", "--timeout", "-1"], says: /--timeout must be a number of seconds greater than 0/ },
];

function run(args: string[], stateDir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, SHELL_SESSIONS_STATE_DIR: stateDir, SESSION_BUDDY_SECRET: "" };
    delete env.SHELL_SESSIONS_STORE;
    execFile(
      process.execPath,
      [CLI_PATH, ...args],
      { env, encoding: "utf8", timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

describe("bad flags: exit 2 with usage, plain words, nothing changed", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "shell-sessions-flags-"));
  after(() => rmSync(stateDir, { recursive: true, force: true }));

  for (const { args, says } of MISUSES) {
    it(`shell-sessions ${args.join(" ")}`, async () => {
      const { code, stdout, stderr } = await run(args, stateDir);
      const name = args[0] === "spool" && args[1] === "drain" ? "spool drain" : args[0];
      assert.equal(code, 2, stderr);
      assert.equal(stdout, "");
      assert.match(stderr, new RegExp(`^shell-sessions ${name}: `));
      assert.match(stderr, says);
      assert.match(stderr, new RegExp(`\\n\\nUsage: shell-sessions ${args[0]}`));
      assert.doesNotMatch(stderr, /ambiguous|argument missing|<value>/);
      assert.deepEqual(readdirSync(stateDir), [], "the state dir stays empty");
    });
  }
});
