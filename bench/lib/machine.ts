/** What the figures were measured on: they mean little without it. */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";

export interface Machine {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  os: string;
  /** 1-minute load average when the run started: other work on the machine skews every figure. */
  loadAverageAtStart: number;
  commit: string | null;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m?.[1]) return m[1].trim();
  } catch {
    // Not Linux: fall back to what Node reports.
  }
  return cpus()[0]?.model ?? "unknown";
}

function commit(): string | null {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return null;
  }
}

export function describeMachine(): Machine {
  return {
    nproc: availableParallelism(),
    cpuModel: cpuModel(),
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    os: `${process.platform} ${release()}`,
    loadAverageAtStart: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    commit: commit(),
  };
}

/** Resident set size of a process, in MiB, from /proc (Linux). */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m?.[1]) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Processes whose command line mentions `text` (Linux /proc), other than this one. */
function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text)) found.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/**
 * Waits (up to `deadlineMs`) until no process mentions `text` in its command
 * line: a shell measured next must not share the two cores with the drain
 * helper the previous shell left behind (its argv names the journal under
 * the state directory), whichever variant comes next. Returns how many
 * were still running at the deadline.
 */
export async function leftoversGone(text: string, deadlineMs = 10_000): Promise<number> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const left = processesMentioning(text).length;
    if (left === 0 || Date.now() >= deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
