/**
 * The write-ahead journal: ids made without node:crypto, lines folded back
 * into what is left to deliver, and the file's mode and lifetime.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { newEventId, newSessionIds } from "../../src/journal/ids.ts";
import { Journal, journalDir, journalPid } from "../../src/journal/journal.ts";
import {
  foldJournal,
  type JournalLine,
  parseJournal,
  pendingEvents,
  type StartLine,
} from "../../src/journal/records.ts";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function start(s: string, e: string): StartLine {
  return {
    k: "start",
    s,
    e,
    tr: "a".repeat(32),
    sp: "b".repeat(16),
    at: 1,
    pid: 1,
    plat: "linux-x64",
    rv: "24",
    c: "billing",
    st: "REPLServer",
  };
}

test("ids: UUID v4 for the session and its events, valid W3C trace and span ids, all distinct", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const ids = newSessionIds();
    assert.match(ids.localId, UUID_V4);
    assert.match(ids.startEventId, UUID_V4);
    assert.match(newEventId(), UUID_V4);
    assert.match(ids.traceId, /^[0-9a-f]{32}$/);
    assert.match(ids.spanId, /^[0-9a-f]{16}$/);
    assert.doesNotMatch(ids.traceId, /^0+$/);
    for (const id of [ids.localId, ids.startEventId, ids.traceId]) {
      assert.ok(!seen.has(id), "ids repeat");
      seen.add(id);
    }
  }
});

test("folding: descriptions and span ids refine the start; acknowledged and spooled events are not pending", () => {
  const lines: JournalLine[] = [
    start("s1", "e1"),
    start("s2", "e2"),
    { k: "describe", s: "s1", c: "mahavishnu", st: "MahavishnuShell", ver: "2.0", ad: ["redis"] },
    { k: "trace", s: "s1", tr: "c".repeat(32), sp: "d".repeat(16) },
    { k: "ack", e: "e1", t: "sess_1" },
    { k: "end", s: "s1", e: "x1", at: 5, r: "sigterm", n: 2, ne: 0 },
    { k: "end", s: "s2", e: "x2", at: 6, r: "process_exit", x: 3, n: 0, ne: 0 },
    { k: "spooled", e: "x2" },
  ];
  const state = foldJournal(lines);
  const s1 = state.sessions.get("s1");
  assert.equal(s1?.start.c, "mahavishnu");
  assert.equal(s1?.start.tr, "c".repeat(32));
  assert.equal(s1?.trackerSessionId, "sess_1");
  const pending = pendingEvents(state).map((p) => `${p.kind}:${p.session.start.s}`);
  assert.deepEqual(pending, ["end:s1", "start:s2"]);
});

test("parsing: a line torn by a crash, or garbage, is counted and the rest is read", () => {
  const text = `${JSON.stringify(start("s1", "e1"))}\n{"k":"end","s":"s1","e":"x1","at":\nnot json\n{"k":"nope"}\n`;
  const { lines, unreadable } = parseJournal(text);
  assert.equal(lines.length, 1);
  assert.equal(unreadable, 3);
  assert.equal(pendingEvents(foldJournal(lines, unreadable)).length, 1);
});

test("the journal file is 0600 in a pre-existing 0755 directory under a permissive umask; it goes once all is answered for", (t) => {
  const state = mkdtempSync(join(tmpdir(), "journal-"));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const env = { SHELL_SESSIONS_STATE_DIR: state };
  mkdirSync(journalDir(env), { recursive: true });
  chmodSync(journalDir(env), 0o755);
  const umask = process.umask(0);
  t.after(() => process.umask(umask));
  const journal = new Journal(env, "0123abcd");
  assert.equal(journalPid(journal.path.split("/").pop() ?? ""), process.pid);
  journal.write(start("s1", "e1"));
  assert.equal(statSync(journal.path).mode & 0o777, 0o600);
  assert.equal(journal.retire(), false, "a shell is still open");
  journal.write({ k: "end", s: "s1", e: "x1", at: 2, r: "eof", n: 0, ne: 0 });
  journal.write({ k: "ack", e: "e1", t: "sess_1" });
  assert.equal(journal.retire(), false, "the end is not acknowledged yet");
  const written = parseJournal(readFileSync(journal.path, "utf8")).lines.map((l) => l.k);
  assert.deepEqual(written, ["start", "end", "ack"]);
  journal.write({ k: "ack", e: "x1" });
  assert.equal(journal.retire(), true);
  assert.throws(() => statSync(journal.path), /ENOENT/);
});
