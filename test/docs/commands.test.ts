/**
 * Docs that run: every fenced shell block of README.md and
 * docs/quick-start.md is executed as a reader would type it, on one machine
 * (a throwaway HOME, free loopback ports, deadlines), and what the docs say
 * it does is asserted. Blocks marked `<!-- doc-test: skip, REASON -->` (Docker,
 * several hosts) are listed as skipped. A command this test does not know
 * fails it: a new doc command comes with its check here.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { type DocBlock, shellBlocks } from "./blocks.ts";
import { DEADLINE_MS, DocWorld, installProject, type OpenShell, packOnce, ROOT } from "./world.ts";

const DOCS = ["README.md", "docs/quick-start.md"];
const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };

interface Step {
  world: DocWorld;
  command: string;
  match: RegExpExecArray;
}

interface Runner {
  pattern: RegExp;
  run(step: Step): Promise<void>;
  /** Why the command is not run (it is listed with the skipped blocks). */
  skip?: string;
}

interface StoredSession {
  session_id: string;
  component_name: string;
  status: string;
  trace_id: string | null;
  exit_reason: string | null;
}

/** Polls `probe` until it returns a value, or fails naming `what` at the deadline. */
/** The sessions in the reader's default store, read with the checkout's CLI (a check, not a doc command). */
async function storedSessions(world: DocWorld): Promise<StoredSession[]> {
  const result = await world.run(`node ${join(ROOT, "dist/cli/main.js")} list --json --limit 500`, ROOT);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as StoredSession[];
}

function sessionEnded(world: DocWorld, traceId: string, timeoutMs = DEADLINE_MS): Promise<StoredSession> {
  return waitFor(
    `the session with trace ${traceId} to be ended in the store`,
    async () => (await storedSessions(world)).find((s) => s.trace_id === traceId && s.status === "ended"),
    timeoutMs,
    200,
  );
}

/** What `npm install` in the checkout promises: Node >= 22.15 in node_modules/.bin, and the lockfile left as it is. */
async function checkoutInstalled(world: DocWorld): Promise<void> {
  const node = execFileSync(join(ROOT, "node_modules/.bin/node"), ["--version"], { encoding: "utf8" }).trim();
  const [major = 0, minor = 0] = node.slice(1).split(".").map(Number);
  assert.ok(major > 22 || (major === 22 && minor >= 15), `node_modules/.bin/node is ${node}`);
  const dir = mkdtempSync(join(tmpdir(), "doc-lock-"));
  try {
    for (const file of ["package.json", "package-lock.json"]) {
      writeFileSync(join(dir, file), readFileSync(join(ROOT, file)));
    }
    const result = await world.run("npm install --package-lock-only --ignore-scripts --offline", dir);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(
      readFileSync(join(dir, "package-lock.json")).equals(readFileSync(join(ROOT, "package-lock.json"))),
      "npm install rewrites package-lock.json: commit the lockfile npm writes",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function portListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => resolve(socket.destroy() !== undefined));
    socket.once("error", () => resolve(false));
  });
}

/** README: the demo shell of a fresh clone, with no tracker running, recorded on this machine. */
async function npmStart(world: DocWorld): Promise<void> {
  assert.equal(
    await portListening(8678),
    false,
    "something listens on 127.0.0.1:8678: this step needs no tracker there",
  );
  const shell = world.terminal("npm start", ROOT);
  await shell.waitFor("demo> ", { timeoutMs: DEADLINE_MS });
  const [, bannerId = "", traceId = ""] = await shell.waitFor(
    /session tracking on · session (\S+) · trace ([0-9a-f]{32})/,
  );
  const mark = shell.mark();
  shell.type("1+1");
  await shell.waitFor(/^2$/m, { since: mark });
  shell.type(".exit");
  assert.deepEqual(await shell.waitForExit(DEADLINE_MS), { exitCode: 0, signal: 0 });
  // "Tracked on this machine": right after the exit, with nothing else started.
  const session = await sessionEnded(world, traceId, 10_000);
  assert.equal(session.exit_reason, "exit_command");
  // The id the banner prints is one `show` takes.
  const shown = await world.run(`node ${join(ROOT, "dist/cli/main.js")} show ${bannerId}`, ROOT);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, new RegExp(session.session_id));
}

async function openApp({ world, command, match }: Step): Promise<void> {
  await installProject(world);
  await world.openShell(command, "app> ", match[1] ?? "");
}

async function openDemo({ world, command }: Step): Promise<void> {
  await installProject(world);
  const { shell, traceId } = await world.openShell(command, "demo> ", "demo");
  const mark = shell.mark();
  shell.type(".session");
  await shell.waitFor(traceId, { since: mark });
}

function lastClosed(world: DocWorld): OpenShell {
  const last = world.closed.at(-1);
  assert.ok(last, "no shell was opened and closed before this command");
  return last;
}

const RUNNERS: Runner[] = [
  {
    pattern: /^npm install && npm start$/,
    run: async ({ world }) => {
      await checkoutInstalled(world);
      await npmStart(world);
    },
  },
  {
    pattern: /^npm test$/,
    skip: "it is the suite running this test",
    run: async () => {},
  },
  {
    pattern: /^npm install && npm pack$/,
    run: async ({ world }) => {
      await checkoutInstalled(world);
      const { result, tarball } = await packOnce();
      assert.equal(result.code, 0, result.stderr);
      assert.equal(tarball, `otel-shell-sessions-${version}.tgz`);
    },
  },
  {
    pattern: /^npm install \/path\/to\/otel-shell-sessions\/(\S+\.tgz)$/,
    run: async ({ world, match }) => {
      const { tarball } = await packOnce();
      assert.equal(match[1], tarball, "the tarball the docs install is the one npm pack writes");
      await installProject(world);
    },
  },
  {
    pattern:
      /^(?:OTEL_METRICS_EXPORTER=prometheus OTEL_EXPORTER_PROMETHEUS_HOST=127\.0\.0\.1 )?npx shell-sessions serve$/,
    run: async ({ world, command }) => {
      await installProject(world);
      const metrics = command.includes("prometheus") ? await freePort() : undefined;
      const url = await world.serve(command, metrics ? { OTEL_EXPORTER_PROMETHEUS_PORT: String(metrics) } : {});
      world.trackerMetricsPort = metrics;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
      assert.ok(
        world.exists(world.stateDir, "tracker.db"),
        "sessions in SQLite under ~/.local/state/otel-shell-sessions",
      );
    },
  },
  { pattern: /^npx shell-sessions shell$/, run: openDemo },
  {
    pattern: /^OTEL_EXPORTER_OTLP_ENDPOINT=(http:\/\/127\.0\.0\.1:4318) npx shell-sessions shell$/,
    run: async ({ world, command, match }) => {
      await installProject(world);
      // The Collector's OTLP/HTTP port, played by a receiver on a free one.
      const receiver = await startOtlpReceiver();
      const open = await world.openShell(command.replace(match[1] ?? "", receiver.url), "demo> ", "demo");
      world.afterClose.push(async () => {
        const span = await receiver.waitForSpan((s) => s.name === "shell.session" && s.traceId === open.traceId);
        assert.equal(span.resource["service.name"], "demo", "Jaeger's service `demo`, operation `shell.session`");
        await receiver.close();
        const port = world.trackerMetricsPort;
        assert.ok(port, "the tracker serving metrics was started first");
        await waitFor(
          "the tracker's metrics to count the session",
          async () => {
            const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
            return /^shell_tracker_sessions_ended_total\{[^}]*shell_component_name="demo"[^}]*\} [1-9]/m.test(text);
          },
          DEADLINE_MS,
          200,
        );
      });
    },
  },
  {
    pattern:
      /^(?:OTEL_SERVICE_NAME=billing )?SHELL_SESSIONS_COMPONENT=(billing) node --import otel-shell-sessions\/register app\.js$/,
    run: openApp,
  },
  {
    pattern: /^npx shell-sessions list --active$/,
    run: async ({ world, command }) => {
      const open = world.open.at(-1);
      assert.ok(open, "a shell is open while `list --active` runs");
      await waitFor(
        `list --active to show the open ${open.component} session`,
        async () => {
          const result = await world.run(command);
          assert.equal(result.code, 0, result.stderr);
          return new RegExp(`\\b${open.component}\\b.*\\bactive\\b`).test(result.stdout);
        },
        DEADLINE_MS,
        200,
      );
    },
  },
  {
    pattern: /^npx shell-sessions list$/,
    run: async ({ world, command }) => {
      const last = lastClosed(world);
      const stored = await sessionEnded(world, last.traceId);
      const result = await world.run(command);
      assert.equal(result.code, 0, result.stderr);
      const row = result.stdout.split("\n").find((line) => line.startsWith(stored.session_id));
      assert.match(row ?? "", new RegExp(`\\b${last.component}\\b.*\\bended\\b`), result.stdout);
    },
  },
  {
    pattern: /^npx shell-sessions show SESSION_ID$/,
    run: async ({ world, command }) => {
      const last = lastClosed(world);
      const stored = await sessionEnded(world, last.traceId);
      // "The id the banner printed, or the sess_… id from list".
      for (const id of [stored.session_id, last.sessionId]) {
        const result = await world.run(command.replace("SESSION_ID", id));
        assert.equal(result.code, 0, `show ${id}: ${result.stderr}`);
        assert.match(result.stdout, new RegExp(last.traceId), `show ${id}`);
      }
    },
  },
  {
    pattern: /^PKG=(node_modules\/otel-shell-sessions)$/,
    run: async ({ world, match }) => {
      await installProject(world);
      for (const file of [
        "otel-collector.yaml",
        "otel-collector-agent.yaml",
        "otel-collector-gateway.yaml",
        "prometheus-rules.yaml",
        "dashboards/shell-sessions.json",
      ]) {
        assert.ok(world.exists(world.project, match[1] ?? "", file), `$PKG/${file}`);
      }
    },
  },
  {
    pattern: /^mkdir -p observability$/,
    run: async ({ world, command }) => {
      const result = await world.run(command);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(world.exists(world.project, "observability"));
    },
  },
];

/** Ends a block: its shells are left with `.exit`, exit 0, and their sessions are ended in the store. */
async function closeShells(world: DocWorld): Promise<void> {
  for (const open of world.open.splice(0)) {
    open.shell.type(".exit");
    assert.deepEqual(await open.shell.waitForExit(DEADLINE_MS), { exitCode: 0, signal: 0 });
    const stored = await sessionEnded(world, open.traceId);
    assert.equal(stored.component_name, open.component);
    world.closed.push(open);
  }
  for (const check of world.afterClose.splice(0)) await check();
}

async function runBlock(world: DocWorld, block: DocBlock): Promise<void> {
  for (const command of block.commands) {
    const runner = RUNNERS.find((r) => r.pattern.test(command));
    assert.ok(
      runner,
      `${block.where}: no check for \`${command}\`: run it in test/docs/commands.test.ts, or mark its block <!-- doc-test: skip, REASON -->`,
    );
    if (runner.skip === undefined) {
      await runner.run({ world, command, match: runner.pattern.exec(command) as RegExpExecArray });
    }
  }
  await closeShells(world);
}

/** A test title: the block's place and first command. */
function titleOf(block: DocBlock): string {
  const more = block.commands.length > 1 ? ` (+${block.commands.length - 1} more)` : "";
  return `${block.where}: ${block.commands[0] ?? "(empty)"}${more}`;
}

/** What is not run: marked blocks, and commands of run blocks that a runner skips. */
function notRun(doc: string): string[] {
  return shellBlocks(ROOT, doc).flatMap((block) => {
    if (block.skip !== undefined) return [`${titleOf(block)} [${block.skip}]`];
    return block.commands.flatMap((command) => {
      const skip = RUNNERS.find((r) => r.pattern.test(command))?.skip;
      return skip === undefined ? [] : [`${block.where}: ${command} [${skip}]`];
    });
  });
}

for (const doc of DOCS) {
  describe(`${doc}: its shell commands run as written`, () => {
    let world: DocWorld;
    before(() => {
      world = new DocWorld();
    });
    after(() => world?.dispose());
    for (const block of shellBlocks(ROOT, doc)) {
      if (block.skip !== undefined) it.skip(`${titleOf(block)} [${block.skip}]`);
      else it(titleOf(block), () => runBlock(world, block));
    }
  });
}

it("prints what it does not run; every skipped block says what it needs", (t) => {
  const skipped = DOCS.flatMap(notRun);
  process.stdout.write(`doc-command test: not run:\n${skipped.map((s) => `  ${s}\n`).join("")}`);
  t.diagnostic(`not run: ${skipped.join("; ")}`);
  for (const doc of DOCS) {
    const blocks = shellBlocks(ROOT, doc);
    assert.ok(
      blocks.some((b) => b.skip === undefined && b.commands.length > 0),
      `${doc}: no runnable shell block`,
    );
    for (const b of blocks.filter((b) => b.skip !== undefined)) {
      assert.match(b.skip ?? "", /^needs (Docker|several hosts)$/, `${b.where}: say what the block needs`);
    }
  }
});
