/**
 * Time to the first prompt, measured through a real PTY: a bare shell host
 * against the same host under `--import otel-shell-sessions/register`, and
 * `shell-sessions shell` against the least script that opens a shell and
 * against a bare `node` REPL (which skips loading any script at all). Runs
 * are interleaved, and the median of each is reported with its ratio to its
 * baseline. A measurement, not a test (speed assertions do not belong in tests).
 *
 *   npm run build && node test/instrumentation/measure-prompt.ts [runs=10]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnPty } from "../helpers/pty.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FIXTURES = join(ROOT, "test/fixtures");
const runs = Number(process.argv[2] ?? 10);
const state = mkdtempSync(join(tmpdir(), "shell-timing-"));

interface Subject {
  name: string;
  args: string[];
  prompt: RegExp;
  baseline?: string;
  tracked?: boolean;
}

const subjects: Subject[] = [
  { name: "host, bare", args: ["repl-host.cjs"], prompt: /host> $/ },
  {
    name: "host, --import register",
    args: ["--import", join(ROOT, "dist/register.js"), "repl-host.cjs"],
    prompt: /host> $/,
    baseline: "host, bare",
    tracked: true,
  },
  { name: "node REPL, bare", args: [], prompt: /> $/ },
  { name: "script REPL, bare", args: ["plain-shell.mjs"], prompt: /demo> $/, baseline: "node REPL, bare" },
  {
    name: "shell-sessions shell",
    args: [join(ROOT, "dist/cli/main.js"), "shell"],
    prompt: /demo> $/,
    baseline: "script REPL, bare",
    tracked: true,
  },
];

async function timeToPrompt(subject: Subject): Promise<{ prompt: number; banner: number | undefined }> {
  const started = performance.now();
  const shell = spawnPty(subject.args, { cwd: FIXTURES, env: { SHELL_SESSIONS_STATE_DIR: state } });
  try {
    await shell.waitFor(subject.prompt);
    const prompt = performance.now() - started;
    if (!subject.tracked) return { prompt, banner: undefined };
    await shell.waitFor(/session tracking on/);
    return { prompt, banner: performance.now() - started };
  } finally {
    shell.dispose();
    await shell.exited;
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
const results = new Map<string, { prompt: number[]; banner: number[] }>(
  subjects.map((s) => [s.name, { prompt: [], banner: [] }]),
);
for (let i = 0; i < runs; i++) {
  for (const subject of subjects) {
    const { prompt, banner } = await timeToPrompt(subject);
    const r = results.get(subject.name);
    r?.prompt.push(prompt);
    if (banner !== undefined) r?.banner.push(banner);
  }
}
rmSync(state, { recursive: true, force: true });

console.log(`time to first prompt, median of ${runs} (node ${process.versions.node})`);
for (const subject of subjects) {
  const r = results.get(subject.name);
  if (r === undefined) continue;
  const ms = median(r.prompt);
  const ratio = (baseline: string | undefined) =>
    baseline === undefined ? "" : ` ${(ms / median(results.get(baseline)?.prompt ?? [])).toFixed(2)}x ${baseline}`;
  const extra = subject.name === "shell-sessions shell" ? `,${ratio("node REPL, bare")}` : "";
  const banner = r.banner.length > 0 ? `; span started at ${median(r.banner).toFixed(0)} ms` : "";
  console.log(`${subject.name.padEnd(24)} ${ms.toFixed(1).padStart(7)} ms${ratio(subject.baseline)}${extra}${banner}`);
}
