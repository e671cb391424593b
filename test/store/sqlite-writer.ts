/**
 * Worker thread for the SQLite concurrency test: its own connection to the
 * shared file, recording its own starts interleaved with starts every
 * worker replays.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { SessionStartEvent } from "../../src/contract/schemas.ts";
import { openStore } from "../../src/store/index.ts";
import { startEvent, T0 } from "./fixtures.ts";

const { path, worker, count, shared } = workerData as {
  path: string;
  worker: number;
  count: number;
  shared: SessionStartEvent[];
};

const store = await openStore(`sqlite:${path}`);
let created = 0;
let replayed = 0;
const ids: string[] = [];
for (let i = 0; i < count; i++) {
  const own = await store.recordStart(startEvent({ pid: worker * 10_000 + i }), T0);
  own.created ? created++ : replayed++;
  ids.push(own.session.session_id);
  const sharedEvent = shared[i % shared.length];
  if (i < shared.length && sharedEvent) {
    const outcome = await store.recordStart(sharedEvent, T0);
    outcome.created ? created++ : replayed++;
    ids.push(outcome.session.session_id);
  }
}
await store.close();
parentPort?.postMessage({ created, replayed, ids });
