/**
 * Running a command against the tracker's store directly (`list`, `show`):
 * the store from `--store`, `$SHELL_SESSIONS_STORE` or the default, with the
 * lease applied first so that what is shown is right even when no server is
 * sweeping.
 */
import { expireLeases } from "../server/lease.ts";
import { OptionError, resolveLeaseSeconds, resolveStoreSpec } from "../server/options.ts";
import { defaultStoreSpec, openStore } from "../store/index.ts";
import type { SessionStore } from "../store/types.ts";
import { usageError } from "./args.ts";

export async function withStore(
  command: { name: string; usage: string },
  flags: { store?: string | undefined; lease?: string | undefined },
  work: (store: SessionStore) => Promise<number>,
): Promise<number> {
  let leaseSeconds: number;
  try {
    leaseSeconds = resolveLeaseSeconds(flags.lease);
  } catch (error) {
    if (error instanceof OptionError) return usageError(command, error.message);
    throw error;
  }
  let store: SessionStore;
  try {
    store = await openStore(resolveStoreSpec(flags.store) ?? defaultStoreSpec());
  } catch (error) {
    process.stderr.write(`shell-sessions ${command.name}: cannot open the store: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    await expireLeases(store, leaseSeconds);
    return await work(store);
  } catch (error) {
    process.stderr.write(`shell-sessions ${command.name}: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await store.close();
  }
}
