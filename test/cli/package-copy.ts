/**
 * A throwaway copy of this package: what `npm pack` ships plus what builds it
 * (package.json, the lockfile, tsconfig.json, src/, scripts/), with
 * node_modules linked from the checkout. Commands that rebuild or pack run in
 * it, so the dist/ every other test spawns is never rewritten under them.
 */
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const BUILD_INPUTS = ["package.json", "package-lock.json", "tsconfig.json", "src", "scripts"];

export interface PackageCopy {
  dir: string;
  remove(): void;
}

export function copyPackage(): PackageCopy {
  const dir = mkdtempSync(join(tmpdir(), "shell-sessions-pkg-"));
  const { files = [] } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { files?: string[] };
  for (const entry of new Set([...BUILD_INPUTS, ...files])) {
    if (entry === "dist" || !existsSync(join(ROOT, entry))) continue;
    cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  }
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The environment a user's terminal would give npm: the checkout's
 * node_modules/.bin first (its Node 24, as npm scripts have it), and none of
 * the `npm_*` variables of the `npm test` that may be running this.
 */
export function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.toLowerCase().startsWith("npm_")) env[key] = value;
  }
  env.PATH = `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH ?? ""}`;
  return { ...env, ...extra };
}

/** Runs a command to completion (bounded by timeoutMs); never throws on a non-zero exit. */
export function runCommand(
  file: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: options.cwd, env: options.env ?? userEnv(), timeout: options.timeoutMs ?? 120_000, encoding: "utf8" },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
