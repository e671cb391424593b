/**
 * The JWT sent with each event: `SESSION_BUDDY_TOKEN` as given; else one
 * minted per component from `SESSION_BUDDY_SECRET`; else from the secret the
 * local tracker generated in the state dir; else none (a tracker with auth
 * off accepts that).
 *
 * A token is never logged, spooled or put on a span: it is looked up at send
 * time. After a rejection the secret is read again on the next attempt, so a
 * tracker started (and its secret generated) after the shell is picked up.
 */
import { mintToken, SCOPE_WRITE } from "../auth/jwt.ts";
import { findSecret } from "../auth/secret.ts";
import type { Logger } from "../log.ts";

interface Minted {
  token: string;
  refreshAt: number;
}

export class Credentials {
  readonly #fixedToken: string | undefined;
  readonly #env: NodeJS.ProcessEnv;
  readonly #ttlSeconds: number;
  readonly #log: Logger;
  #secret: string | null | undefined;
  #secretReadAt = 0;
  readonly #minted = new Map<string, Minted>();

  constructor(options: { token: string | undefined; env: NodeJS.ProcessEnv; ttlSeconds: number; log: Logger }) {
    this.#fixedToken = options.token;
    this.#env = options.env;
    this.#ttlSeconds = options.ttlSeconds;
    this.#log = options.log;
  }

  async tokenFor(component: string): Promise<string | undefined> {
    if (this.#fixedToken !== undefined) return this.#fixedToken;
    const cached = this.#minted.get(component);
    if (cached && Date.now() < cached.refreshAt) return cached.token;
    const secret = this.#readSecret();
    if (secret === null) return undefined;
    try {
      const token = await mintToken({ secret, component, ttlSeconds: this.#ttlSeconds, scopes: [SCOPE_WRITE] });
      this.#minted.set(component, { token, refreshAt: Date.now() + this.#ttlSeconds * 900 });
      return token;
    } catch (error) {
      this.#log.warnOnce(
        `mint:${component}`,
        `cannot mint a token for component "${component}": ${(error as Error).message}`,
      );
      return undefined;
    }
  }

  /** Forget what was read and minted, so the next send reads the secret again. */
  invalidate(): void {
    this.#secret = undefined;
    this.#minted.clear();
  }

  #readSecret(): string | null {
    // "No secret" is re-checked now and then: the local tracker may generate one later.
    if (this.#secret !== undefined && (this.#secret !== null || Date.now() - this.#secretReadAt < 10_000)) {
      return this.#secret;
    }
    this.#secretReadAt = Date.now();
    try {
      const found = findSecret(this.#env);
      if (found?.warning) this.#log.warnOnce("secret-mode", found.warning);
      this.#secret = found?.secret ?? null;
    } catch (error) {
      this.#log.warnOnce("secret", `the shared secret cannot be used: ${(error as Error).message}`);
      this.#secret = null;
    }
    return this.#secret;
  }
}
