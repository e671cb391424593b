/**
 * The hostile side of the hostile-load stress test, in its own process so
 * that its thousands of sockets do not slow the measuring client down.
 *
 *   node hostile-client.ts '{"url":"http://127.0.0.1:PORT/mcp","slow":1500,"idle":5000,"seconds":60}'
 *
 * Keeps `slow` unauthenticated POSTs open, each declaring a 960 KiB chunked
 * body and trickling a chunk every few seconds, and `idle` connections that
 * never send a byte; whatever the server closes is reopened (after a short
 * pause) until `seconds` have passed. Loopback only. Prints one JSON line of
 * counts when done.
 */
import { connect, type Socket } from "node:net";

interface Plan {
  url: string;
  slow: number;
  idle: number;
  seconds: number;
}

const plan = JSON.parse(process.argv[2] ?? "{}") as Plan;
const target = new URL(plan.url);
if (!/^127\./.test(target.hostname)) throw new Error("the hostile client targets 127.0.0.0/8 only");
const port = Number(target.port);
const endAt = Date.now() + plan.seconds * 1000;
const counts = { slowOpened: 0, idleOpened: 0, closedByServer: 0, statuses: {} as Record<string, number> };
const open = new Set<Socket>();
const CHUNK = Buffer.alloc(16 * 1024, 0x20);
const REOPEN_PAUSE_MS = 5000;

function keep(kind: "slow" | "idle"): void {
  if (Date.now() >= endAt) return;
  const socket = connect(port, target.hostname);
  open.add(socket);
  let answered = "";
  socket.on("error", () => {});
  socket.on("data", (data: Buffer) => {
    if (answered === "") answered = data.toString("latin1", 0, 12).split(" ")[1] ?? "?";
  });
  let timer: NodeJS.Timeout | undefined;
  socket.once("connect", () => {
    if (kind === "idle") {
      counts.idleOpened++;
      return;
    }
    counts.slowOpened++;
    socket.write(
      `POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    const trickle = () => {
      socket.write(`${CHUNK.length.toString(16)}\r\n`);
      socket.write(CHUNK);
      socket.write("\r\n");
      timer = setTimeout(trickle, 2000 + Math.random() * 2000);
    };
    trickle();
  });
  socket.once("close", () => {
    clearTimeout(timer);
    open.delete(socket);
    counts.closedByServer++;
    if (answered !== "") counts.statuses[answered] = (counts.statuses[answered] ?? 0) + 1;
    setTimeout(() => keep(kind), REOPEN_PAUSE_MS);
  });
}

/** Opens sockets in batches, so the attack builds up within seconds rather than one enormous burst. */
async function rampUp(kind: "slow" | "idle", total: number): Promise<void> {
  for (let i = 0; i < total; i++) {
    keep(kind);
    if (i % 250 === 249) await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

await Promise.all([rampUp("slow", plan.slow), rampUp("idle", plan.idle)]);
process.stderr.write(`hostile client: attacking with ${plan.slow} slow bodies and ${plan.idle} idle sockets\n`);
await new Promise((resolve) => setTimeout(resolve, Math.max(0, endAt - Date.now())));
for (const socket of open) socket.destroy();
process.stdout.write(`${JSON.stringify(counts)}\n`);
process.exit(0);
