/**
 * This package as users install it: the tarball `npm pack` makes, installed
 * by a real `npm install` into throwaway apps beside the OpenTelemetry
 * packages each app chose (from the registry). For every app the admin
 * shell's session must reach the tracker (the embedded default) and an OTLP
 * receiver under the app's service name, with no duplicate registration of
 * the API. The production install footprint is printed. Needs `npm run
 * build` (the tarball is packed from dist/).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { defaultStoreSpec } from "../../src/store/index.ts";
import { runCommand, userEnv } from "../cli/package-copy.ts";
import { storedSessions } from "../exporter/support.ts";
import { type OtlpReceiver, startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { spawnPty } from "../helpers/pty.ts";
import { waitFor } from "../helpers/wait.ts";
import { bannerOf, isSessionSpan, ROOT } from "./shell-testbed.ts";

/**
 * The current stack, with auto-instrumentations-node (whose sdk-node range the
 * same copy satisfies): three of the apps share one install of it.
 */
const CURRENT_STACK = [
  "@opentelemetry/api@1.10.0",
  "@opentelemetry/sdk-node@0.301.0",
  "@opentelemetry/auto-instrumentations-node@0.82.0",
];
const OLDEST_STACK = ["@opentelemetry/api@1.9.1", "@opentelemetry/sdk-node@0.203.0"];

/** An app with its own NodeSDK (from the OTEL_* variables) and one span of its own, then an admin shell. */
const OWN_SDK_APP = `
import repl from "node:repl";
import { trace } from "@opentelemetry/api";
import { NodeSDK } from "@opentelemetry/sdk-node";
const sdk = new NodeSDK();
sdk.start();
trace.getTracer("app").startSpan("app.ready").end();
repl.start("app> ").on("exit", () => void sdk.shutdown());
`;

/** The same, but the SDK starts 2 s in (configuration loaded first), and the shell only once it is up. */
const LATE_SDK_APP = `
import repl from "node:repl";
import { trace } from "@opentelemetry/api";
import { NodeSDK } from "@opentelemetry/sdk-node";
setTimeout(() => {
  const sdk = new NodeSDK();
  sdk.start();
  trace.getTracer("app").startSpan("app.ready").end();
  repl.start("app> ").on("exit", () => void sdk.shutdown());
}, 2000);
`;

/** No OpenTelemetry code of its own: whatever --import starts. */
const BARE_APP = `
import repl from "node:repl";
repl.start("app> ");
`;

interface App {
  name: string;
  packages: string[];
  source: string;
  imports: string[];
  /** Whether the app's own span is expected beside the session span. */
  ownSpan: boolean;
  /** A line the output must show. */
  says?: RegExp;
}

const APPS: App[] = [
  {
    name: "the current stack (api 1.10, sdk-node 0.301), its SDK started before the shell",
    packages: CURRENT_STACK,
    source: OWN_SDK_APP,
    imports: ["otel-shell-sessions/register"],
    ownSpan: true,
    says: /an OpenTelemetry SDK is already registered in this process; shell sessions join it/,
  },
  {
    name: "the oldest stack (api 1.9, sdk-node 0.203): the version conflict is said",
    packages: OLDEST_STACK,
    source: OWN_SDK_APP,
    imports: ["otel-shell-sessions/register"],
    ownSpan: true,
    says: /OpenTelemetryApiConflictWarning: otel-shell-sessions: .*@opentelemetry\/api 1\.9\.1/,
  },
  {
    name: "the current stack, its SDK started 2 s in",
    packages: CURRENT_STACK,
    source: LATE_SDK_APP,
    imports: ["otel-shell-sessions/register"],
    ownSpan: true,
  },
  {
    name: "--import @opentelemetry/auto-instrumentations-node/register as well",
    packages: CURRENT_STACK,
    source: BARE_APP,
    imports: ["@opentelemetry/auto-instrumentations-node/register", "otel-shell-sessions/register"],
    ownSpan: false,
  },
];

const work = mkdtempSync(join(tmpdir(), "shell-tarball-apps-"));
let tarball = "";
let receiver: OtlpReceiver;

/** Runs npm in `cwd` as a user's terminal would, failing with npm's own words. */
async function npm(cwd: string, args: string[]): Promise<string> {
  const result = await runCommand("npm", args, { cwd, env: userEnv(), timeoutMs: 300_000 });
  assert.equal(result.code, 0, `npm ${args.join(" ")} failed:\n${result.stderr}`);
  return result.stdout;
}

function newApp(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, private: true, type: "module" }));
  return dir;
}

/** One install per set of packages (with the tarball), made by the first app that needs it. */
const installs = new Map<string, Promise<string>>();
function installed(packages: string[]): Promise<string> {
  const key = packages.join(" ");
  let dir = installs.get(key);
  if (dir === undefined) {
    const app = newApp(`app-${installs.size}`);
    dir = npm(app, ["install", "--no-audit", "--no-fund", ...packages, tarball]).then(() => app);
    installs.set(key, dir);
  }
  return dir;
}

before(async () => {
  receiver = await startOtlpReceiver();
  // --ignore-scripts: pack the dist/ the suite built, without rebuilding it under other tests.
  await npm(ROOT, ["pack", "--ignore-scripts", "--pack-destination", work]);
  const packed = readdirSync(work).find((f) => f.endsWith(".tgz"));
  assert.ok(packed, "npm pack wrote a tarball");
  tarball = join(work, packed);
});

after(async () => {
  await receiver?.close();
  rmSync(work, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
});

describe("the packed tarball in throwaway apps", () => {
  APPS.forEach((app, index) => {
    test(app.name, async (t) => {
      const dir = await installed(app.packages);
      const file = `app-${index}.mjs`;
      writeFileSync(join(dir, file), app.source);
      const serviceName = `ledger-${index}`;
      const stateDir = join(dir, `state-${index}`);
      const shell = spawnPty([...app.imports.flatMap((i) => ["--import", i]), file], {
        cwd: dir,
        env: {
          ...receiver.env(),
          OTEL_SERVICE_NAME: serviceName,
          OTEL_LOG_LEVEL: "warn",
          OTEL_NODE_ENABLED_INSTRUMENTATIONS: "http",
          SHELL_SESSIONS_STATE_DIR: stateDir,
        },
      });
      t.after(() => shell.dispose());
      await shell.waitFor("app> ", { timeoutMs: 30_000 });
      const { sessionId, traceId } = await bannerOf(shell);
      if (app.says) await shell.waitFor(app.says);
      shell.type("6*7");
      await shell.waitFor("42");
      shell.type(".exit");
      assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });
      assert.doesNotMatch(shell.output, /duplicate registration|versions must match/i);

      const [span] = await receiver.waitForSpans(isSessionSpan(sessionId));
      assert.equal(span?.traceId, traceId);
      assert.equal(span?.resource["service.name"], serviceName, "the session span, under the app's service name");
      if (app.ownSpan) {
        const [own] = await receiver.waitForSpans(
          (s) => s.name === "app.ready" && s.resource["service.name"] === serviceName,
        );
        assert.ok(own, "the app's own SDK still exports its spans");
      }
      const store = defaultStoreSpec({ SHELL_SESSIONS_STATE_DIR: stateDir });
      const record = await waitFor("the shell's record, ended", async () => {
        const { sessions } = await storedSessions(store);
        return sessions.find((s) => s.trace_id === traceId && s.status === "ended");
      });
      assert.equal(record.exit_reason, "exit_command");
      assert.equal(record.component_name, serviceName);
    });
  });

  test("the production install footprint is printed; pg is left to PostgreSQL users, who are told to install it", async (t) => {
    const dir = newApp("footprint");
    const installed = await npm(dir, ["install", "--omit=dev", "--no-audit", "--no-fund", tarball]);
    const du = await runCommand("du", ["-sb", "node_modules"], { cwd: dir });
    const bytes = Number(du.stdout.split(/\s/)[0]);
    // npm's own count ("added N packages"), as a user reads it.
    const packages = Number(/added (\d+) packages?/.exec(installed)?.[1]);
    assert.ok(bytes > 0 && packages > 0, `du: ${du.stdout} ${du.stderr}; npm: ${installed}`);
    t.diagnostic(`production install: ${(bytes / 1e6).toFixed(1)} MB, ${packages} packages`);
    assert.ok(!existsSync(join(dir, "node_modules", "pg")), "pg is an optional peer dependency");
    const cli = join(dir, "node_modules", "otel-shell-sessions", "dist", "cli", "main.js");
    const sqlite = await runCommand(process.execPath, [cli, "list"], {
      cwd: dir,
      env: { ...userEnv(), SHELL_SESSIONS_STATE_DIR: join(dir, "state") },
    });
    assert.equal(sqlite.code, 0, sqlite.stderr);
    const postgres = await runCommand(process.execPath, [cli, "list", "--store", "postgres://127.0.0.1:1/tracker"], {
      cwd: dir,
      env: userEnv(),
    });
    assert.equal(postgres.code, 1);
    assert.match(postgres.stderr, /a postgres:\/\/ store needs the pg package, .*: run npm install pg/);
    process.stdout.write(`# production install footprint: ${(bytes / 1e6).toFixed(1)} MB, ${packages} packages\n`);
  });
});
