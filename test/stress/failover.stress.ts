/**
 * The tracker scaled out: two `shell-sessions serve` instances on one
 * PostgreSQL store behind a plain TCP round-robin balancer (below, loopback
 * only), and one instance SIGKILLed while hundreds of real shells open their
 * sessions through it. The MCP revision 2026-07-28 is stateless and every
 * instance keeps its state in the shared store, so the surviving instance
 * answers whatever the dead one would have: no session may be lost and none
 * recorded twice.
 *
 * The balancer knows nothing of MCP or HTTP: each client connection goes to
 * the next instance in turn, and to the one after when that one refuses the
 * connection (as nginx's stream proxy does by default); a connection cut by
 * the kill is simply cut. The exporters keep their connections open, so after
 * the kill the survivor takes over on the connections they already hold to
 * it, and on any new one. STRESS_FAILOVER_SESSIONS and STRESS_WORKERS size
 * the run (default 400 sessions in 4 worker processes).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openStore } from "../../src/store/index.ts";
import { createDatabase, startPostgres } from "../helpers/postgres.ts";
import { randomSecret, runCli, TrackerProcess } from "../helpers/tracker.ts";
import { checkDelivery, type DeliveryCheck, Fleet } from "./support/fleet.ts";
import { DELIVERY_ENV } from "./support/scenarios.ts";
import { formatNumber } from "./support/stats.ts";

const SESSIONS = Number(process.env.STRESS_FAILOVER_SESSIONS ?? 400);
const WORKERS = Number(process.env.STRESS_WORKERS ?? 4);
const SPREAD_MS = 8_000;

interface Balancer {
  url: string;
  /** Client connections handed to each backend so far, by backend index. */
  connections: number[];
  /** Connections a backend refused, by backend index. */
  refused: number[];
  /** Bytes the clients sent to each backend so far, by backend index. */
  bytes: number[];
  close(): Promise<void>;
}

/** Pipes `client` to backend `index`, or on refusal to the next one; gives up when every backend refused. */
function forward(client: Socket, ports: number[], index: number, tries: number, balancer: Balancer): void {
  const upstream = createConnection({ host: "127.0.0.1", port: ports[index] as number });
  let connected = false;
  upstream.once("connect", () => {
    connected = true;
    balancer.connections[index] = (balancer.connections[index] ?? 0) + 1;
    client.on("data", (chunk: Buffer) => {
      balancer.bytes[index] = (balancer.bytes[index] ?? 0) + chunk.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  upstream.on("error", () => {
    if (connected || tries <= 1) {
      client.destroy();
      return;
    }
    balancer.refused[index] = (balancer.refused[index] ?? 0) + 1;
    forward(client, ports, (index + 1) % ports.length, tries - 1, balancer);
  });
  client.on("error", () => upstream.destroy());
  client.on("close", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
}

/** Starts the balancer; `ports` may be filled in after, once the backends listen. */
async function startBalancer(ports: number[]): Promise<Balancer> {
  let next = 0;
  const sockets = new Set<Socket>();
  const balancer: Balancer = {
    url: "",
    connections: ports.map(() => 0),
    refused: ports.map(() => 0),
    bytes: ports.map(() => 0),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.pause();
    const index = next;
    next = (next + 1) % ports.length;
    forward(client, ports, index, ports.length, balancer);
    client.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  balancer.url = `http://127.0.0.1:${port}/mcp`;
  const close = balancer.close;
  balancer.close = async () => {
    for (const socket of sockets) socket.destroy();
    await close();
  };
  return balancer;
}

interface AtKill {
  connections: number[];
  bytes: number[];
}

function figures(check: DeliveryCheck, balancer: Balancer, atKill: AtKill, drained: number): string {
  const after = balancer.connections.map((n, i) => n - (atKill.connections[i] ?? 0));
  const kib = (n: number | undefined) => formatNumber((n ?? 0) / 1024, "KiB");
  return [
    `${check.sessionsOpened} sessions in ${WORKERS} processes through one balancer to 2 instances on one PostgreSQL`,
    `connections before the kill: instance A ${atKill.connections[0]}, instance B ${atKill.connections[1]}; after: A ${after[0]}, B ${after[1]} (A refused ${balancer.refused[0] ?? 0} after it died)`,
    `sent to instance B before the kill ${kib(atKill.bytes[1])}, after it ${kib((balancer.bytes[1] ?? 0) - (atKill.bytes[1] ?? 0))}`,
    `events emitted ${check.eventsEmitted}, acknowledged ${check.eventsAcknowledged} (${check.acknowledgedInProcess} while the shells ran; ${drained} spools drained afterwards)`,
    `lost ${check.lost}, duplicated ${check.duplicated}, unexpected ${check.unexpected}, resends de-duplicated by the store ${check.resentAndDeduplicated}`,
    `emission latency p50 ${formatNumber(check.latency.all.p50, "ms")}, p99 ${formatNumber(check.latency.all.p99, "ms")}`,
    `exporter outcomes ${JSON.stringify(check.emissions)}`,
  ].join("\n");
}

test(`failover: ${SESSIONS} shells, two tracker instances on one PostgreSQL, one SIGKILLed mid-run`, {
  timeout: 600_000,
}, async (t) => {
  const root = mkdtempSync(join(tmpdir(), "otel-shell-sessions-failover-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const postgres = await startPostgres();
  t.after(() => postgres.stop());
  const store = await createDatabase(postgres.url, "failover");
  const secret = randomSecret();
  const ports: number[] = [];
  const balancer = await startBalancer(ports);
  t.after(() => balancer.close());
  // Clients name the balancer in their Host header: each instance must accept that name (DNS rebinding protection).
  const args = ["--allow-host", new URL(balancer.url).host];
  const instances = ["a", "b"].map((name) => new TrackerProcess({ store, secret, args, stateDir: join(root, name) }));
  t.after(async () => {
    for (const instance of instances) await instance.stop().catch(() => {});
  });
  // One after the other: the first creates the schema.
  for (const instance of instances) {
    await instance.start();
    ports.push(instance.port);
  }
  const [a, b] = instances as [TrackerProcess, TrackerProcess];

  const sessionsPerWorker = Math.ceil(SESSIONS / WORKERS);
  const fleet = await Fleet.start({
    workers: WORKERS,
    sessionsPerWorker,
    root: join(root, "shells"),
    env: { ...DELIVERY_ENV, SESSION_BUDDY_URL: balancer.url, SESSION_BUDDY_SECRET: secret },
  });
  t.after(() => fleet.kill());

  // Mid-opening: starts are in flight on both instances when A dies.
  let atKill: AtKill = { connections: [], bytes: [] };
  const killer = new Promise<void>((resolve, reject) => {
    setTimeout(() => {
      atKill = { connections: [...balancer.connections], bytes: [...balancer.bytes] };
      a.kill("SIGKILL").then((status) => {
        t.diagnostic(`instance A (pid ${a.pid}) killed: ${JSON.stringify(status)}`);
        resolve();
      }, reject);
    }, SPREAD_MS / 2);
  });
  const peakOpen = await fleet.open(SPREAD_MS);
  await killer;
  await fleet.close(sessionsPerWorker, SPREAD_MS);
  const reports = await fleet.finish(90_000);

  // Whatever a shell's process could not deliver before it exited is drained through the balancer, as an operator would.
  const unsettled = reports.filter((r) => !r.settled);
  for (const report of unsettled) {
    await runCli(
      ["spool", "drain", "--url", balancer.url, "--timeout", "60"],
      { SHELL_SESSIONS_STATE_DIR: fleet.stateDirs[report.index] as string, SESSION_BUDDY_SECRET: secret },
      90_000,
    );
  }
  await b.stop();
  const opened = await openStore(store);
  let check: DeliveryCheck;
  try {
    check = await checkDelivery(reports, opened);
  } finally {
    await opened.close();
  }
  const text = figures(check, balancer, atKill, unsettled.length);
  for (const line of text.split("\n")) t.diagnostic(line);
  process.stdout.write(`failover figures:\n${text}\n`);

  const expected = sessionsPerWorker * WORKERS;
  assert.equal(peakOpen, expected, "every shell opened its session");
  assert.ok(
    (atKill.connections[0] ?? 0) > 0 && (atKill.connections[1] ?? 0) > 0,
    "both instances served before the kill",
  );
  // Everything was acknowledged (below), and what came after the kill can only have gone to the survivor.
  assert.ok((balancer.bytes[1] ?? 0) > (atKill.bytes[1] ?? 0), "the survivor took over after the kill");
  assert.deepEqual(check.problems, [], "what the shells emitted and what the store holds differ");
  assert.equal(check.lost, 0, "sessions lost");
  assert.equal(check.duplicated, 0, "sessions duplicated");
  assert.equal(check.unexpected, 0, "sessions nobody opened");
  assert.equal(check.eventsAcknowledged, check.eventsEmitted, "every start and end is in the store once");
});
