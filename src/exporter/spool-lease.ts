/**
 * The drain lease, in the spool's `leases` table: one process at a time
 * drains the spool. A lease runs out unless its holder renews it, so one left
 * by a process that died does not block the others for good.
 */
import type { DatabaseSync } from "node:sqlite";

const DRAIN_LEASE = "drain";

/** Takes or renews the lease for `owner` until `ttlMs` from now; false when another live owner holds it. */
export function acquireDrainLease(
  db: DatabaseSync,
  owner: string,
  ttlMs: number,
  isGone: (holder: string) => boolean,
): boolean {
  const now = Date.now();
  const held = db.prepare("SELECT owner, expires_at AS e FROM leases WHERE name = ?").get(DRAIN_LEASE) as
    | { owner: string; e: number }
    | undefined;
  if (held && held.owner !== owner && Number(held.e) > now && !isGone(held.owner)) return false;
  db.prepare(
    "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
  ).run(DRAIN_LEASE, owner, now + ttlMs);
  return true;
}

/** Gives the lease up, if `owner` still holds it. */
export function releaseDrainLease(db: DatabaseSync, owner: string): void {
  db.prepare("DELETE FROM leases WHERE name = ? AND owner = ?").run(DRAIN_LEASE, owner);
}
