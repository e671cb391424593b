/**
 * Emission latency: from a shell session's span start (or end) to the
 * tracker's acknowledgement of the event, one session at a time, over HTTP
 * and over stdio; beside the round trip of the no-op peer's tool on the same
 * SDK and transport, measured in alternating blocks in the same run.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { endPayload, startPayload } from "../../test/helpers/mcp-client.ts";
import { CLI_PATH, randomSecret, type TrackerProcess } from "../../test/helpers/tracker.ts";
import { Fleet } from "../../test/stress/support/fleet.ts";
import { type Summary, summarize } from "../../test/stress/support/stats.ts";
import { NOOP_TOOL } from "./peer.ts";

export interface EmissionOptions {
  /** Blocks of ours and the peer's, alternating. */
  blocks: number;
  sessionsPerBlock: number;
  callsPerBlock: number;
  /** Sessions and calls before the first block, not counted (connections, module loading, JIT). */
  warmup: number;
}

export interface EmissionFigures {
  transport: "http" | "stdio";
  /** Milliseconds, span start → start acknowledged. */
  start: Summary;
  /** Milliseconds, span end → end acknowledged. */
  end: Summary;
  /** Both kinds of event together. */
  all: Summary;
  /** Starts of the first session of each block, after the peer's block left the exporter idle. */
  afterIdleGap: Summary;
  /** The other starts (the exporter busy a moment before). */
  warmStart: Summary;
  /** Milliseconds each peer block (the idle gap before the next block of sessions) lasted, median. */
  idleGapMs: number;
  /** Milliseconds per no-op tool call (request → answer), the platform's floor. */
  peer: Summary;
}

export type Target =
  | { transport: "http"; tracker: TrackerProcess; peer: Client }
  | { transport: "stdio"; root: string; peer: Client };

/** The shells' environment: where their events go. */
function deliveryEnv(target: Target): Record<string, string> {
  if (target.transport === "http") {
    return { SESSION_BUDDY_URL: target.tracker.url, SESSION_BUDDY_SECRET: target.tracker.secret ?? "" };
  }
  const store = join(target.root, "stdio-tracker.db");
  // The exporter spawns the tracker itself and hands it its environment, secret included.
  return {
    SESSION_BUDDY_COMMAND: `${process.execPath} ${CLI_PATH} serve --stdio --store sqlite:${store}`,
    SESSION_BUDDY_SECRET: randomSecret(),
  };
}

async function peerCalls(peer: Client, count: number, into: number[] | undefined): Promise<void> {
  // The peer gets the same arguments as the tracker, so both move the same bytes.
  const start = startPayload({ component_name: "bench" });
  const end = endPayload("sess_peer");
  for (let i = 0; i < count; i++) {
    const began = performance.now();
    await peer.callTool({ name: NOOP_TOOL, arguments: i % 2 === 0 ? start : end });
    into?.push(performance.now() - began);
  }
}

export async function emissionLatency(
  target: Target,
  root: string,
  options: EmissionOptions,
): Promise<EmissionFigures> {
  const shells = join(root, `shells-${target.transport}`);
  mkdirSync(shells, { recursive: true });
  const fleet = await Fleet.start({ workers: 1, sessionsPerWorker: 0, root: shells, env: deliveryEnv(target) });
  const peer: number[] = [];
  const gaps: number[] = [];
  try {
    await fleet.sequence(options.warmup);
    await peerCalls(target.peer, options.warmup, undefined);
    for (let block = 0; block < options.blocks; block++) {
      await fleet.sequence(options.sessionsPerBlock);
      const began = performance.now();
      await peerCalls(target.peer, options.callsPerBlock, peer);
      gaps.push(performance.now() - began);
    }
    const [report] = await fleet.finish(30_000);
    const sessions = [...(report?.sessions ?? [])].sort((a, b) => a.spanStart - b.spanStart).slice(options.warmup);
    const start = sessions.flatMap((s) => (s.startAck !== null ? [s.startAck - s.spanStart] : []));
    const end = sessions.flatMap((s) => (s.endAck !== null && s.spanEnd !== null ? [s.endAck - s.spanEnd] : []));
    const expected = options.blocks * options.sessionsPerBlock;
    if (start.length !== expected || end.length !== expected) {
      throw new Error(`only ${start.length} starts and ${end.length} ends of ${expected} sessions were acknowledged`);
    }
    // The first block follows the warm-up's peer calls: every block's first session comes after an idle gap.
    const firstOfBlock = (i: number) => i % options.sessionsPerBlock === 0;
    return {
      transport: target.transport,
      start: summarize(start),
      end: summarize(end),
      all: summarize([...start, ...end]),
      afterIdleGap: summarize(start.filter((_, i) => firstOfBlock(i))),
      warmStart: summarize(start.filter((_, i) => !firstOfBlock(i))),
      idleGapMs: summarize(gaps).p50,
      peer: summarize(peer),
    };
  } finally {
    fleet.kill();
  }
}

/** One process with many shells opened at once, then all closed at once, beside as many no-op calls at once. */
export interface ConcurrentFigures {
  shells: number;
  rounds: number;
  /** Milliseconds from each span start (end) to its acknowledgement, every event of every round. */
  all: Summary;
  /** Milliseconds per no-op call, `shells` calls issued together, every round. */
  peer: Summary;
}

/**
 * `shells` REPLs of one process (one exporter) opened together and then
 * closed together, against the tracker over HTTP, each round in a fresh
 * process whose telemetry was warmed by a few sessions first; beside
 * `shells` no-op calls issued together on one client, each round.
 */
export async function concurrentEmission(
  target: Extract<Target, { transport: "http" }>,
  root: string,
  options: { shells: number; rounds: number; warmup: number },
): Promise<ConcurrentFigures> {
  const ours: number[] = [];
  const peer: number[] = [];
  const start = startPayload({ component_name: "bench" });
  for (let round = 0; round < options.rounds; round++) {
    const dir = join(root, `concurrent-${round}`);
    mkdirSync(dir, { recursive: true });
    const fleet = await Fleet.start({
      workers: 1,
      sessionsPerWorker: options.shells,
      root: dir,
      env: deliveryEnv(target),
    });
    try {
      await fleet.sequence(options.warmup);
      await fleet.open(0);
      await fleet.close(options.shells, 0);
      const [report] = await fleet.finish(60_000);
      const sessions = [...(report?.sessions ?? [])].sort((a, b) => a.spanStart - b.spanStart).slice(options.warmup);
      for (const s of sessions) {
        if (s.startAck === null || s.endAck === null || s.spanEnd === null) {
          throw new Error(`session ${s.localSessionId} was not acknowledged`);
        }
        ours.push(s.startAck - s.spanStart, s.endAck - s.spanEnd);
      }
    } finally {
      fleet.kill();
    }
    await Promise.all(
      Array.from({ length: options.shells }, async () => {
        const began = performance.now();
        await target.peer.callTool({ name: NOOP_TOOL, arguments: start });
        peer.push(performance.now() - began);
      }),
    );
  }
  return { shells: options.shells, rounds: options.rounds, all: summarize(ours), peer: summarize(peer) };
}
