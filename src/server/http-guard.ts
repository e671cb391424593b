/**
 * DNS-rebinding protection: which Host and Origin headers name this server.
 *
 * Bound to loopback (any 127.0.0.0/8 address, ::1 or localhost), only
 * loopback names reach the server legitimately: anything else is a
 * rebinding attempt. Bound to another address, the server is reachable
 * under names it cannot know (a load balancer's), so Host is checked only
 * against `--allow-host` when that is given.
 */
import { type HttpOptions, isLoopbackHost } from "./options.ts";

const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"];
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]"]);

export function hostForUrl(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** `name:port`, and the bare name too on port 80, where clients leave the port out. */
function withPort(names: readonly string[], port: number, scheme = ""): string[] {
  return names.flatMap((name) =>
    port === 80 ? [`${scheme}${name}:${port}`, `${scheme}${name}`] : [`${scheme}${name}:${port}`],
  );
}

export class RequestGuard {
  readonly #origins: Set<string>;
  readonly #hosts: Set<string> | undefined;

  constructor(options: HttpOptions, port: number) {
    const bound = hostForUrl(options.host).toLowerCase();
    // The bound address is a name of this server too (127.0.0.2, a LAN address), unless it is a wildcard.
    const own = WILDCARD_HOSTS.has(options.host) ? LOOPBACK_NAMES : [...new Set([...LOOPBACK_NAMES, bound])];
    this.#origins = new Set([...withPort(own, port, "http://"), ...options.allowedOrigins.map((o) => o.toLowerCase())]);
    const allowedHosts = options.allowedHosts.map((h) => h.toLowerCase());
    this.#hosts =
      isLoopbackHost(options.host) || allowedHosts.length > 0
        ? new Set([...withPort(own, port), ...allowedHosts])
        : undefined;
  }

  hostAllowed(host: string | undefined): boolean {
    if (this.#hosts === undefined) return true;
    if (host === undefined) return false;
    const lower = host.toLowerCase();
    return this.#hosts.has(lower) || this.#hosts.has(lower.replace(/:\d+$/, ""));
  }

  originAllowed(origin: string | undefined): boolean {
    return origin === undefined || this.#origins.has(origin.toLowerCase());
  }
}
