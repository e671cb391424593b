/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`,
 * run with the project's Node) against the tracker over Streamable HTTP, in
 * both protocol eras: every server scenario that applies to a stateless,
 * tools-only server must pass, check by check.
 *
 * Scenarios that do not apply, and why (they are not run):
 * - prompts-*, resources-*, completion-complete, sep-2164-resource-not-found,
 *   logging-set-level, tools-call-with-logging: the tracker has no prompts,
 *   resources, completions or logging capability.
 * - tools-call-simple-text, -image, -audio, -embedded-resource,
 *   -mixed-content, -error, -with-progress, -sampling, -elicitation,
 *   elicitation-*, json-schema-2020-12, http-custom-header-server-validation,
 *   input-required-result-*: they call fixture tools of the suite's reference
 *   server (test_simple_text, test_error_handling, …) that a tracker does not
 *   have; some "pass" only because an unknown tool is answered with an error.
 * - server-session-lifecycle, server-sse-polling, and server-sse-multiple-
 *   streams at 2025-11-25: they need MCP sessions or a standalone SSE stream;
 *   the tracker is stateless and answers JSON (the suite itself skips or
 *   warns).
 * - tasks-* (an extension) and sep-2640-skills-* (an extension): not offered.
 *
 * Checks that do not apply inside scenarios that do, and why:
 * - server-stateless: sep-2575-server-rejects-undeclared-capability and
 *   sep-2575-missing-capability-http-400 need the suite's diagnostic tool
 *   test_missing_capability (a tool that requires the client's sampling
 *   capability); no tracker tool needs any client capability. And
 *   sep-2575-server-sends-{prompts,tools}-list-changed-on-subscription (the
 *   suite skips them): the tracker has no prompts and its tool list never
 *   changes (it advertises listChanged: false). Likewise
 *   sep-2575-http-server-no-independent-requests-on-stream and
 *   sep-2575-server-no-log-without-loglevel: they need the diagnostic tools
 *   test_streaming_elicitation and test_logging_tool; the tracker answers an
 *   unknown tool with the protocol error -32602, which the suite reports as
 *   "not testable" (with a tool error result it counted them as passes).
 * - caching: the prompts/list, resources/list and resources/templates/list
 *   hints, for capabilities the tracker does not offer (their methods answer
 *   -32601, as they must).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { startTracker, type TrackerProcess } from "../helpers/tracker.ts";

const run = promisify(execFile);

const CONFORMANCE_CLI = join(
  dirname(createRequire(import.meta.url).resolve("@modelcontextprotocol/conformance/package.json")),
  "dist/index.js",
);

const SCENARIOS: Record<string, readonly string[]> = {
  "2025-11-25": ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"],
  "2026-07-28": [
    "server-stateless",
    "tools-list",
    "caching",
    "dns-rebinding-protection",
    "http-header-validation",
    "server-sse-multiple-streams",
  ],
};

const NOT_APPLICABLE = new Set([
  "sep-2575-server-rejects-undeclared-capability",
  "sep-2575-missing-capability-http-400",
  "sep-2575-server-sends-prompts-list-changed-on-subscription",
  "sep-2575-server-sends-tools-list-changed-on-subscription",
  "sep-2575-http-server-no-independent-requests-on-stream",
  "sep-2575-server-no-log-without-loglevel",
  "sep-2549-prompts-list-caching-hints",
  "sep-2549-resources-list-caching-hints",
  "sep-2549-resources-templates-list-caching-hints",
  "sep-2549-resources-read-caching-hints",
]);

/** What the suite may say of a check that applies: it passed, or it only informs. */
const ACCEPTED = new Set(["SUCCESS", "INFO"]);

interface Check {
  id: string;
  status: string;
  errorMessage?: string;
}

async function runScenario(url: string, version: string, scenario: string, out: string): Promise<Check[]> {
  const dir = join(out, version, scenario);
  const args = [CONFORMANCE_CLI, "server", "--url", url, "--scenario", scenario, "--spec-version", version];
  // A failing scenario exits non-zero; the checks file says which check failed, which is what the test reports.
  await run(process.execPath, [...args, "-o", dir], { timeout: 60_000 }).catch(() => undefined);
  const [runDir] = readdirSync(dir);
  assert.ok(runDir, `the suite wrote no results for ${scenario} at ${version}`);
  return JSON.parse(readFileSync(join(dir, runDir, "checks.json"), "utf8")) as Check[];
}

describe("the MCP conformance suite, server scenarios for a tools-only server", () => {
  let tracker: TrackerProcess;
  let out: string;

  before(async () => {
    // The suite sends no credentials: authentication is off for this loopback-only tracker.
    tracker = await startTracker({ args: ["--insecure-no-auth"] });
    out = mkdtempSync(join(tmpdir(), "conformance-"));
  });
  after(async () => {
    await tracker?.stop();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  for (const [version, scenarios] of Object.entries(SCENARIOS)) {
    for (const scenario of scenarios) {
      test(`${scenario} at ${version}`, async () => {
        const checks = await runScenario(tracker.url, version, scenario, out);
        const applying = checks.filter((check) => !NOT_APPLICABLE.has(check.id));
        assert.ok(
          applying.some((check) => check.status === "SUCCESS"),
          `no check passed: ${JSON.stringify(checks)}`,
        );
        const failed = applying.filter((check) => !ACCEPTED.has(check.status));
        assert.deepEqual(
          failed.map((check) => `${check.id}: ${check.status} ${check.errorMessage ?? ""}`),
          [],
          `${scenario} at ${version}`,
        );
      });
    }
  }
});
