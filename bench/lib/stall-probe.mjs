/**
 * Loaded with `--import` into the shells the benchmark measures (bare and
 * instrumented alike): records when the event loop was held up. A 5 ms
 * interval timer notes each firing that came more than 10 ms after the
 * previous one, as [epoch ms when the gap began, gap in ms], and the list is
 * written to $STALL_PROBE_FILE as the process exits. Plain JavaScript and
 * built-ins only, so that it costs both variants the same.
 */
import { writeFileSync } from "node:fs";

const file = process.env.STALL_PROBE_FILE;
if (file) {
  const gaps = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - last > 10) gaps.push([performance.timeOrigin + last, now - last]);
    last = now;
  }, 5);
  timer.unref();
  process.on("exit", () => writeFileSync(file, JSON.stringify(gaps)));
}
