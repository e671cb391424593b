/**
 * The spool on a full filesystem: a small tmpfs mounted for the test (root
 * only; skipped with the reason otherwise), filled up with a plain file.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { Spool, type SpoolInput } from "../../src/exporter/spool.ts";

const LIMITS = { maxEvents: 100_000, maxBytes: 1e9 };

/** A 1 MiB tmpfs mounted on a fresh directory and unmounted after `t`; a reason to skip when that is impossible. */
function smallFilesystem(t: TestContext): string | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: "mounting a small tmpfs needs root" };
  const dir = mkdtempSync(join(tmpdir(), "spool-full-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", dir], { stdio: "pipe" });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `mount -t tmpfs failed: ${String((error as { stderr?: unknown }).stderr ?? error).trim()}` };
  }
  // Registered first, so it runs first: a lazy unmount works with the spool's files still open.
  t.after(() => {
    execFileSync("umount", ["-l", dir], { stdio: "pipe" });
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Writes a file until the filesystem refuses more. */
function fill(path: string): void {
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    closeSync(fd);
  }
}

function start(): SpoolInput {
  const id = randomUUID();
  return { eventId: id, kind: "start", startEventId: id, component: "c", payload: { pad: "x".repeat(2000) } };
}

test("a full disk is named as such; the events that could not be written are counted as lost", (t) => {
  const fs = smallFilesystem(t);
  if (typeof fs !== "string") return t.skip(fs.skip);
  const path = join(fs, "state", "spool.db");
  const warnings: string[] = [];
  const spool = Spool.open(path, { limits: LIMITS, onWarning: (m) => warnings.push(m) });
  t.after(() => spool.close());
  spool.put([start()]);
  fill(join(fs, "filler"));

  const events = [start(), start(), start()];
  const result = spool.put(events);
  assert.deepEqual(result.stored, []);
  assert.equal(result.lost.length, 3);
  const reason = result.lost[0]?.reason ?? "";
  assert.match(reason, new RegExp(`cannot write the spool ${path}: the disk \\(filesystem\\) holding it is full`));
  assert.doesNotMatch(reason, /cannot rollback/);
  // Even the lost counter cannot be written: the process keeps the count and says so.
  assert.equal(spool.stats().lost, 3);
  assert.match(warnings.join("\n"), /3 lost event\(s\) could not be counted in the spool's lost counter either/);

  // Space again: the next write also records the count in the file, for every other process to see.
  rmSync(join(fs, "filler"));
  spool.put([start()]);
  const reader = Spool.open(path, { limits: LIMITS });
  t.after(() => reader.close());
  assert.equal(reader.stats().lost, 3);
  assert.equal(reader.count(), 2);
});

test("creating a spool on a full disk fails with a message naming the full disk", (t) => {
  const fs = smallFilesystem(t);
  if (typeof fs !== "string") return t.skip(fs.skip);
  mkdirSync(join(fs, "state"));
  fill(join(fs, "filler"));
  const path = join(fs, "state", "spool.db");
  assert.throws(
    () => Spool.open(path, { limits: LIMITS }),
    (error: Error) =>
      error.name === "SpoolFullError" &&
      error.message.includes(`cannot write the spool ${path}: the disk (filesystem) holding it is full`) &&
      !/cannot rollback/.test(error.message),
  );
});
