/**
 * A hung PostgreSQL: the postmaster and every backend are stopped with
 * SIGSTOP for 20 s (PG_STOP_SECONDS) while a client keeps calling a real
 * `shell-sessions serve --store-timeout 2`. Every call must answer within
 * the timeout (plus a little for HTTP), with a structured `unavailable`
 * error; after SIGCONT, calls succeed again without restarting the tracker.
 * The figures are printed.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import pg from "pg";
import { SessionStartResult } from "../../src/contract/schemas.ts";
import { connectHttp, startPayload, tokenFor } from "../helpers/mcp-client.ts";
import { createDatabase, startPostgres } from "../helpers/postgres.ts";
import { startTracker } from "../helpers/tracker.ts";
import { formatNumber, summarize } from "./support/stats.ts";

const STOP_SECONDS = Number(process.env.PG_STOP_SECONDS ?? 20);
const TIMEOUT_S = 2;
/** What HTTP, MCP and the client add to the store timeout. */
const SLACK_MS = 1000;

/** The postmaster's pid (from its data directory) and its children's: the whole server. */
async function serverPids(url: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const dir = (await client.query<{ data_directory: string }>("SHOW data_directory")).rows[0]?.data_directory;
  await client.end();
  const postmaster = Number(execFileSync("head", ["-1", `${dir}/postmaster.pid`], { encoding: "utf8" }).trim());
  const children = execFileSync("pgrep", ["-P", String(postmaster)], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map(Number);
  return [postmaster, ...children];
}

test(`PostgreSQL stopped for ${STOP_SECONDS} s: every call answers unavailable within the store timeout, then recovers`, {
  timeout: (STOP_SECONDS + 120) * 1000,
}, async (t) => {
  const server = await startPostgres();
  t.after(() => server.stop());
  const database = await createDatabase(server.url, "stopped");
  const tracker = await startTracker({ store: database, args: ["--store-timeout", String(TIMEOUT_S)] });
  t.after(() => tracker.stop());
  const client = await connectHttp(tracker.url, { token: await tokenFor(tracker.secret as string, "mahavishnu") });
  t.after(() => client.close());
  const call = async () => {
    const t0 = performance.now();
    const result = SessionStartResult.parse((await client.call("track_session_start", startPayload())).result);
    return { ms: performance.now() - t0, result };
  };
  assert.equal((await call()).result.status, "tracked");

  const pids = await serverPids(server.url);
  for (const pid of pids) process.kill(pid, "SIGSTOP");
  let continued = false;
  const resume = () => {
    if (continued) return;
    continued = true;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // gone already
      }
    }
  };
  t.after(resume);
  const stoppedAt = Date.now();
  const during: number[] = [];
  const codes = new Map<string, number>();
  while (Date.now() - stoppedAt < STOP_SECONDS * 1000) {
    const { ms, result } = await call();
    during.push(ms);
    const key = result.code ?? result.status;
    codes.set(key, (codes.get(key) ?? 0) + 1);
    assert.equal(result.status, "error", "no start can be recorded while the database is stopped");
    assert.equal(result.code, "unavailable");
    assert.ok(ms <= TIMEOUT_S * 1000 + SLACK_MS, `a call took ${ms} ms`);
  }
  const health = await client.call("health_check");
  assert.equal(health.result.status, "unavailable");
  resume();

  const resumedAt = Date.now();
  let recovered: number | undefined;
  while (recovered === undefined && Date.now() - resumedAt < 30_000) {
    const { result } = await call();
    if (result.status === "tracked") recovered = Date.now() - resumedAt;
  }
  assert.ok(recovered !== undefined, "calls succeed again after SIGCONT, without a restart");
  for (let i = 0; i < 10; i++) assert.equal((await call()).result.status, "tracked");
  // health_check reuses a probe's result for a second: poll it.
  const healthDeadline = Date.now() + 10_000;
  let status = "";
  while (status !== "healthy" && Date.now() < healthDeadline) {
    status = String((await client.call("health_check")).result.status);
    if (status !== "healthy") await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(status, "healthy");

  const s = summarize(during);
  const figures = `${during.length} calls during a ${STOP_SECONDS} s SIGSTOP, answers ${JSON.stringify(Object.fromEntries(codes))}, latency p50 ${formatNumber(s.p50, "ms")}, max ${formatNumber(s.max, "ms")} (store timeout ${TIMEOUT_S} s); first success ${recovered} ms after SIGCONT`;
  t.diagnostic(figures);
  console.log(figures);
});
