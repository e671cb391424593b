import assert from "node:assert/strict";
import { test } from "node:test";
import { Breaker, type CircuitState } from "../../src/exporter/breaker.ts";
import { DeliveryFailure } from "../../src/exporter/errors.ts";
import { waitFor } from "./support.ts";

const fail = () => Promise.reject(new DeliveryFailure("transient", "econnrefused", "connection refused"));
const ok = () => Promise.resolve("ok");

async function outcome(breaker: Breaker, task: () => Promise<unknown>): Promise<string> {
  try {
    await breaker.fire(task);
    return "ok";
  } catch (error) {
    return (error as { code?: string }).code === "EOPENBREAKER" ? "short-circuited" : "failed";
  }
}

test("exactly three consecutive failures open the circuit; a success in between resets the count", async (t) => {
  const states: CircuitState[] = [];
  const breaker = new Breaker({ failures: 3, resetMs: 60_000, onStateChange: (s) => states.push(s) });
  t.after(() => breaker.shutdown());
  for (let i = 0; i < 5; i++) assert.equal(await outcome(breaker, ok), "ok");
  assert.equal(await outcome(breaker, fail), "failed");
  assert.equal(await outcome(breaker, fail), "failed");
  assert.equal(breaker.state, "closed", "two failures after a run of successes do not open it");
  assert.equal(await outcome(breaker, ok), "ok");
  assert.equal(await outcome(breaker, fail), "failed");
  assert.equal(await outcome(breaker, fail), "failed");
  assert.equal(breaker.state, "closed", "the success reset the count");
  assert.equal(await outcome(breaker, fail), "failed");
  assert.equal(breaker.state, "open", "the third consecutive failure opens it");
  assert.deepEqual(states, ["open"]);
  let called = false;
  const result = await outcome(breaker, async () => {
    called = true;
  });
  assert.equal(result, "short-circuited");
  assert.equal(called, false, "an open circuit does not call the tracker");
});

test("an open circuit goes half-open after the reset timeout: a failed probe reopens it, a good one closes it", async (t) => {
  const states: CircuitState[] = [];
  const breaker = new Breaker({ failures: 3, resetMs: 150, onStateChange: (s) => states.push(s) });
  t.after(() => breaker.shutdown());
  for (let i = 0; i < 3; i++) await outcome(breaker, fail);
  assert.equal(breaker.state, "open");
  await waitFor("half-open", () => breaker.state === "half_open", 10_000);
  assert.equal(await outcome(breaker, fail), "failed", "the probe is let through");
  assert.equal(breaker.state, "open", "a failed probe opens it again at once");
  await waitFor("half-open again", () => breaker.state === "half_open", 10_000);
  assert.equal(await outcome(breaker, ok), "ok");
  assert.equal(breaker.state, "closed");
  assert.deepEqual(states, ["open", "half_open", "open", "half_open", "closed"]);
  // Closed again with a clean count: two failures do not reopen it.
  await outcome(breaker, fail);
  await outcome(breaker, fail);
  assert.equal(breaker.state, "closed");
});

test("a half-open probe we aborted ourselves neither closes the circuit nor counts against the tracker", async (t) => {
  const states: CircuitState[] = [];
  const breaker = new Breaker({ failures: 3, resetMs: 150, onStateChange: (s) => states.push(s) });
  t.after(() => breaker.shutdown());
  for (let i = 0; i < 3; i++) await outcome(breaker, fail);
  await waitFor("half-open", () => breaker.state === "half_open", 10_000);
  const aborted = () => Promise.reject(new DeliveryFailure("aborted", "aborted", "delivery was stopped"));
  assert.equal(await outcome(breaker, aborted), "failed");
  assert.equal(breaker.state, "open", "back to open: the probe said nothing about the tracker");
  await waitFor("half-open again", () => breaker.state === "half_open", 10_000);
  assert.equal(await outcome(breaker, ok), "ok");
  assert.deepEqual(states, ["open", "half_open", "open", "half_open", "closed"], "never closed by the abort");
});

test("rejections (the tracker answered no) never open the circuit", async (t) => {
  const breaker = new Breaker({ failures: 3, resetMs: 60_000 });
  t.after(() => breaker.shutdown());
  const rejected = () => Promise.reject(new DeliveryFailure("rejected", "unauthenticated", "bad token", true));
  for (let i = 0; i < 10; i++) assert.equal(await outcome(breaker, rejected), "failed");
  assert.equal(breaker.state, "closed");
});
