/**
 * The embedded default: with no tracker configured (neither
 * `SESSION_BUDDY_URL` nor `SESSION_BUDDY_COMMAND`), sessions go to a tracker
 * answering at the default URL if one does (`shell-sessions serve`), and
 * otherwise to the local store: this package's own tracker, spawned over
 * stdio on the state dir's SQLite file, the store `shell-sessions list` reads.
 * So a first run records its sessions with nothing else running.
 *
 * The local tracker runs with its own OpenTelemetry SDK off (it must not
 * bind the host program's Prometheus port, or export under its name), and
 * the secret it and the exporter share is created in the state dir first,
 * so the very first event carries a token it accepts.
 */
import { connect } from "node:net";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { findOrCreateSecret } from "../auth/secret.ts";
import type { TransportSpec } from "./options.ts";

/** How long the default URL is given to accept a connection. */
const PROBE_TIMEOUT_MS = 250;

/** The local tracker: this package's CLI (`serve --stdio`), run by the Node.js running this process. */
export function embeddedTracker(): Extract<TransportSpec, { kind: "stdio" }> {
  const here = fileURLToPath(import.meta.url);
  const cli = join(dirname(here), "..", "cli", `main${extname(here)}`);
  return { kind: "stdio", command: process.execPath, args: [cli, "serve", "--stdio"] };
}

/** Whether something accepts TCP connections at the URL's host and port. */
export function answers(url: URL, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    timer.unref();
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** The environment of the local tracker: the shell's, with the tracker's own telemetry off. */
export function embeddedEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  findOrCreateSecret(env);
  return { ...env, OTEL_SDK_DISABLED: "true" };
}
