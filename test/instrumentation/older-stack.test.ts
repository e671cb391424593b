/**
 * An app on the oldest OpenTelemetry stack still in use (`@opentelemetry/api`
 * 1.9 with `sdk-node` 0.203, the 2.x SDK), with this package installed from
 * its packed tarball by a real `npm install` (the other packages come from
 * the registry). The app's api copy cannot share providers with this
 * package's api 1.10, so: the shell must still be recorded by the tracker,
 * its span must still reach OTLP under the app's service name, the app's own
 * spans must be untouched, and the conflict must be said rather than left
 * silent. Needs `npm run build` (the tarball is packed from dist/).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { defaultStoreSpec } from "../../src/store/index.ts";
import { runCommand, userEnv } from "../cli/package-copy.ts";
import { storedSessions } from "../exporter/support.ts";
import { type OtlpReceiver, startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { spawnPty } from "../helpers/pty.ts";
import { waitFor } from "../helpers/wait.ts";
import { bannerOf, isSessionSpan, ROOT } from "./shell-testbed.ts";

const OLD_STACK = ["@opentelemetry/api@1.9.1", "@opentelemetry/sdk-node@0.203.0"];

/** The app: its own NodeSDK from the OTEL_* variables, one span of its own, then an admin shell. */
const APP = `
import repl from "node:repl";
import { trace } from "@opentelemetry/api";
import { NodeSDK } from "@opentelemetry/sdk-node";
const sdk = new NodeSDK();
sdk.start();
trace.getTracer("ledger-app").startSpan("app.ready").end();
repl.start("ledger> ").on("exit", () => void sdk.shutdown());
`;

const work = mkdtempSync(join(tmpdir(), "shell-older-stack-"));
const app = join(work, "app");
const stateDir = join(work, "state");
let receiver: OtlpReceiver;

before(async () => {
  receiver = await startOtlpReceiver();
  // --ignore-scripts: pack the dist/ the suite built, without rebuilding it under other tests.
  const pack = await runCommand("npm", ["pack", "--ignore-scripts", "--pack-destination", work], {
    cwd: ROOT,
    env: userEnv(),
    timeoutMs: 120_000,
  });
  assert.equal(pack.code, 0, pack.stderr);
  const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
  assert.ok(tarball, "npm pack wrote a tarball");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "ledger", private: true, type: "module" }));
  writeFileSync(join(app, "app.mjs"), APP);
  const install = await runCommand("npm", ["install", "--no-audit", "--no-fund", ...OLD_STACK, join(work, tarball)], {
    cwd: app,
    env: userEnv(),
    timeoutMs: 300_000,
  });
  assert.equal(install.code, 0, `npm install failed:\n${install.stderr}`);
});

after(async () => {
  await receiver?.close();
  rmSync(work, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
});

test("an app on api 1.9 / sdk-node 0.203: the shell is recorded, its span exported, and the conflict said", async (t) => {
  const shell = spawnPty(["--import", "otel-shell-sessions/register", "app.mjs"], {
    cwd: app,
    env: {
      ...receiver.env(),
      OTEL_SERVICE_NAME: "ledger",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      SHELL_SESSIONS_STATE_DIR: stateDir,
    },
  });
  t.after(() => shell.dispose());
  await shell.waitFor("ledger> ");
  const { sessionId, traceId } = await bannerOf(shell);
  await shell.waitFor(/OpenTelemetryApiConflictWarning: otel-shell-sessions/);
  assert.match(
    shell.output,
    /@opentelemetry\/api 1\.9\.1, which this package's SDK \(it needs @opentelemetry\/api ~1\.10/,
  );
  shell.type("6*7");
  await shell.waitFor("42");
  shell.type(".exit");
  assert.deepEqual(await shell.waitForExit(), { exitCode: 0, signal: 0 });

  const [span] = await receiver.waitForSpans(isSessionSpan(sessionId));
  assert.ok(span);
  assert.equal(span.traceId, traceId);
  assert.equal(span.resource["service.name"], "ledger");
  const [own] = await receiver.waitForSpans((s) => s.name === "app.ready");
  assert.equal(own?.resource["service.name"], "ledger", "the app's own SDK still exports its spans");

  const store = defaultStoreSpec({ SHELL_SESSIONS_STATE_DIR: stateDir });
  const record = await waitFor("the shell's record, ended", async () => {
    const { sessions } = await storedSessions(store);
    return sessions.find((s) => s.trace_id === traceId && s.status === "ended");
  });
  assert.equal(record.exit_reason, "exit_command");
  assert.equal(record.component_name, "ledger");
});
