/**
 * The protocol era each tracker speaks, remembered in the state dir across
 * processes. A connect that knows the era skips the SDK's era probe: one
 * round trip less on every process's first connect, and no probe in flight
 * when a program leaves. The SDK waits on its probe with a referenced timer
 * of its own, which would keep a program that is done alive until a slow
 * tracker answered or the call timeout passed.
 *
 * The SDK takes a remembered verdict as `connect({ prior })` and checks it
 * (a malformed one is refused, and the next connect probes again); a
 * tracker that no longer answers in that era is forgotten by the
 * connection. A cache, so every failure to read or write it only costs the
 * probe. One small file per tracker, named by a hash of its address or
 * command line (which never appears in the file), written whole and renamed
 * into place, so processes writing at once never leave a torn one.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { PriorDiscovery } from "@modelcontextprotocol/client";
import type { TransportSpec } from "./options.ts";

export const ERAS_DIR_NAME = "eras";

export interface EraMemory {
  /** The era remembered for this tracker, if any (the SDK checks it further). */
  recall(): PriorDiscovery | undefined;
  /** Remembers an era, or forgets it (undefined). */
  remember(era: PriorDiscovery | undefined): void;
}

function fileFor(stateDir: string, transport: TransportSpec): string {
  const target =
    transport.kind === "http" ? transport.url.href : ["stdio", transport.command, ...transport.args].join("\0");
  return join(stateDir, ERAS_DIR_NAME, `${createHash("sha256").update(target).digest("hex").slice(0, 32)}.json`);
}

function isPrior(value: unknown): value is PriorDiscovery {
  if (typeof value !== "object" || value === null) return false;
  const { kind } = value as { kind?: unknown };
  return kind === "legacy" || (kind === "modern" && typeof (value as { discover?: unknown }).discover === "object");
}

export function eraMemory(stateDir: string, transport: TransportSpec): EraMemory {
  const path = fileFor(stateDir, transport);
  let known: string | undefined;
  return {
    recall() {
      try {
        const text = readFileSync(path, "utf8");
        const value: unknown = JSON.parse(text);
        if (!isPrior(value)) return undefined;
        known = text;
        return value;
      } catch {
        return undefined;
      }
    },
    remember(era) {
      try {
        if (era === undefined) {
          rmSync(path, { force: true });
          known = undefined;
          return;
        }
        const text = JSON.stringify(era);
        if (text === known) return;
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        const temporary = `${path}.${process.pid}.tmp`;
        writeFileSync(temporary, text, { mode: 0o600 });
        renameSync(temporary, path);
        known = text;
      } catch {
        // Not remembered: the next process probes, as it would have without this file.
      }
    },
  };
}
