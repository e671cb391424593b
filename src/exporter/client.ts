/**
 * The exporter's MCP connection to its tracker, over Streamable HTTP or stdio.
 *
 * Protocol era: the first connect probes with `server/discover` (the
 * stateless revision 2026-07-28) and falls back to the `initialize` handshake
 * when the tracker does not offer it (Session-Buddy and other 2025-era
 * servers). The answer is remembered for the life of this object, across
 * reconnects, so a handshake-only tracker costs one probe, not one per
 * connect; only a connect that fails in a way that says the remembered era no
 * longer fits (the tracker answered, but not in that era) probes again.
 *
 * Over stdio the probe goes to the tracker process the connection spawns
 * (the SDK's default spawns a disposable sibling for it, which doubles the
 * first connect's start-up time and under load pushed it past the call
 * timeout). A server that ends on the unknown request instead of answering
 * is taken for a handshake-era one, and the next connect goes straight to
 * `initialize`.
 */
import type { ChildProcess } from "node:child_process";
import type { Client, jsonSchemaValidator, PriorDiscovery } from "@modelcontextprotocol/client";
import type { CallToolResultLike } from "../contract/index.ts";
import type { Logger } from "../log.ts";
import { name, version } from "../package-info.ts";
import { type DetachedFetch, detachedFetch } from "./detached-fetch.ts";
import type { EraMemory } from "./era-memory.ts";
import { DeliveryFailure } from "./errors.ts";
import { failureFromMcpError, isEraMismatch, isProbeCutOff } from "./mcp-errors.ts";
import { ENV, type TransportSpec } from "./options.ts";

export const CLIENT_INFO = { name, version } as const;

type ClientSdk = typeof import("@modelcontextprotocol/client");

// Loaded on the first connect, never before: a shell whose sessions are never sent does not pay for it.
let clientSdk: ClientSdk | undefined;
async function loadClientSdk(): Promise<ClientSdk> {
  clientSdk ??= await import("@modelcontextprotocol/client");
  return clientSdk;
}

/**
 * Tool results are checked against the output schemas the tracker lists with
 * the SDK's interpreting validator (the one it offers for runtimes without
 * code generation) rather than its Ajv one: Ajv compiles each schema to code
 * at the first call, 27 to 40 ms on the event loop of the instrumented
 * program just after its first prompt, and keeps the compiled code (put at
 * about 5 MiB) for the three tools we call. The exporter checks a few
 * results a second at most; interpreting the schema costs microseconds each.
 */
let resultValidator: jsonSchemaValidator | undefined;
async function schemaValidator(): Promise<jsonSchemaValidator> {
  if (!resultValidator) {
    const { CfWorkerJsonSchemaValidator } = await import("@modelcontextprotocol/client/validators/cf-worker");
    resultValidator = new CfWorkerJsonSchemaValidator();
  }
  return resultValidator;
}

type StdioTransportClass = typeof import("@modelcontextprotocol/client/stdio").StdioClientTransport;
let inPlaceStdio: StdioTransportClass | undefined;

/**
 * The SDK's stdio transport, subclassed: the SDK probes a subclass in place
 * rather than on a sibling process. The tracker it spawns, and the pipes to
 * it, never keep this process alive: it stays up while the program runs, and
 * ends on the end of its input when the program exits.
 */
async function inPlaceStdioTransport(): Promise<StdioTransportClass> {
  if (!inPlaceStdio) {
    const { StdioClientTransport } = await import("@modelcontextprotocol/client/stdio");
    inPlaceStdio = class InPlaceStdioClientTransport extends StdioClientTransport {
      override async start(): Promise<void> {
        await super.start();
        const child = (this as unknown as { _process?: ChildProcess })._process;
        child?.unref();
        for (const pipe of [child?.stdin, child?.stdout, child?.stderr])
          (pipe as { unref?: () => void } | null)?.unref?.();
      }
    };
  }
  return inPlaceStdio;
}

/**
 * Request timeouts a connect may spend: at most three round trips, the era
 * probe (when the era is not yet known), the `initialize` handshake (for a
 * tracker of the handshake era), and the tool listing. Each request also has
 * the call timeout on its own.
 */
const CONNECT_STEPS = 3;

type RequestTimers = {
  _setupTimeout(messageId: number, ...rest: unknown[]): void;
  _resetTimeout(messageId: number): boolean;
  _timeoutInfo: Map<number, { timeoutId: NodeJS.Timeout }>;
};

/**
 * The SDK starts a referenced timer for each request's timeout, and only the
 * answer, the timeout or an abort clears it (closing the client does not).
 * A program that is done, with a call still in flight to a slow tracker,
 * would wait for that answer, whatever the exit grace says. Our own deadline
 * (`#withTimeout`, unreferenced) aborts the request through its signal,
 * which clears the SDK's timer; so the SDK's timer is unreferenced as it is
 * set. These members are private in the SDK's types (an exactly pinned
 * version); the exit test against a slow tracker (exit-matrix) fails if they
 * move.
 */
function detachRequestTimers(client: Client): void {
  const internals = client as unknown as Partial<RequestTimers>;
  if (typeof internals._setupTimeout !== "function" || typeof internals._resetTimeout !== "function") return;
  const setup = internals._setupTimeout.bind(client);
  const reset = internals._resetTimeout.bind(client);
  const detach = (messageId: number) => internals._timeoutInfo?.get(messageId)?.timeoutId.unref?.();
  internals._setupTimeout = (messageId, ...rest) => {
    setup(messageId, ...rest);
    detach(messageId);
  };
  internals._resetTimeout = (messageId) => {
    const kept = reset(messageId);
    detach(messageId);
    return kept;
  };
}

/** The tracker's protocol era, as the exporter says it in its log. */
export type ProtocolEra = "stateless" | "handshake";

export interface ConnectionOptions {
  transport: TransportSpec;
  timeoutMs: number;
  /** Sent as `Authorization: Bearer` on every HTTP request; stdio servers read credentials from their environment. */
  bearer: string | undefined;
  /** The environment passed to a stdio server (with delivery switched off there, so it never delivers to itself). */
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** The era this tracker was found to speak by earlier processes, and where to tell later ones. */
  eras?: EraMemory | undefined;
  /** False while the program seems to be leaving: a connect that would probe the tracker's era is not started. */
  mayProbe?: (() => boolean) | undefined;
}

type Closer = { close(): Promise<void> };

export class McpConnection {
  readonly #options: ConnectionOptions;
  #client: Client | undefined;
  #connecting: Promise<Client> | undefined;
  #transport: Closer | undefined;
  #tools: Set<string> | undefined;
  /** What the tracker speaks, once a connect (of this process or an earlier one) has found out; kept across reset(). */
  #era: PriorDiscovery | undefined;
  /** Whether the era remembered in the state dir was read: once, at the first connect. */
  #recalled = false;
  #closed = false;
  /** HTTP only: its pooled sockets outlive reset(), so a reconnect finds them warm. */
  #fetch: DetachedFetch | undefined;
  /** Bumped on every close, so a late callback of an old connection changes nothing. */
  #generation = 0;
  /** The generation whose connect abandonConnect() gave up: its calls fail as aborted, not to be retried at once. */
  #abandoned = -1;
  /** A connect is waiting on the SDK's era probe. */
  #probing = false;

  constructor(options: ConnectionOptions) {
    this.#options = options;
  }

  get connected(): boolean {
    return this.#client !== undefined;
  }

  /** The protocol era the tracker was found to speak; undefined until a connect has succeeded. */
  get era(): ProtocolEra | undefined {
    if (this.#era === undefined) return undefined;
    return this.#era.kind === "modern" ? "stateless" : "handshake";
  }

  /** Tools the server listed on this connection; undefined until connected. */
  hasTool(name: string): boolean {
    return this.#tools?.has(name) ?? false;
  }

  /** Calls a tool; throws DeliveryFailure-classifiable errors. `meta` goes into `params._meta`. */
  async callTool(
    name: string,
    args: Record<string, unknown>,
    meta: Record<string, string>,
  ): Promise<CallToolResultLike> {
    // The connect and the call each have their own deadline: against a tracker slower than half the call
    // timeout, one deadline for both ran out on every attempt, and nothing was ever delivered.
    const client =
      this.#client ?? (await this.#withTimeout("connect", (signal) => this.#connect(signal), CONNECT_STEPS));
    return this.#withTimeout(`${name} call`, async (signal) => {
      const params = { name, arguments: args, ...(Object.keys(meta).length > 0 ? { _meta: meta } : {}) };
      return (await client.callTool(params, { signal, timeout: this.#options.timeoutMs })) as CallToolResultLike;
    });
  }

  /** Connects (if needed) and returns whether the server lists `name`. */
  async supports(name: string): Promise<boolean> {
    await this.#withTimeout("connect", (signal) => this.#connect(signal), CONNECT_STEPS);
    return this.hasTool(name);
  }

  /**
   * Gives up a connect that is probing the tracker's era, if one is under
   * way; anything else is left alone. For a program that seems to be
   * leaving: the SDK waits on its probe with a timer of its own that we
   * cannot reach, and that timer would keep the program alive until the
   * tracker answers the probe or the timeout passes. Closing the transport
   * ends the probe at once. Calls of the connect fail as aborted, and their
   * events wait in the spool (see `mayProbe` for what follows).
   */
  abandonConnect(): void {
    if (!this.#probing) return;
    this.#abandoned = this.#generation;
    this.reset();
  }

  /** Closes the connection and aborts whatever is in flight. Idempotent; the next call reconnects. */
  reset(): void {
    this.#generation++;
    this.#probing = false;
    const transport = this.#transport;
    const client = this.#client;
    this.#client = undefined;
    this.#connecting = undefined;
    this.#transport = undefined;
    this.#tools = undefined;
    // Closing the client closes its transport: the HTTP transport aborts its requests, the stdio one ends the child.
    (client ?? transport)?.close().catch(() => {});
  }

  /** Closes for good. */
  close(): void {
    this.#closed = true;
    this.reset();
    this.#fetch?.destroy();
  }

  /** Runs `run` with a deadline of `steps` request timeouts, aborting it through its signal when that passes. */
  async #withTimeout<T>(what: string, run: (signal: AbortSignal) => Promise<T>, steps = 1): Promise<T> {
    if (this.#closed) throw new DeliveryFailure("aborted", "aborted", "the connection was closed");
    const controller = new AbortController();
    const generation = this.#generation;
    const deadlineMs = this.#options.timeoutMs * steps;
    const timedOut = () => new DeliveryFailure("transient", "timeout", `${what} timed out after ${deadlineMs} ms`);
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      controller.abort(timedOut());
      if (this.#generation === generation) this.reset();
    }, deadlineMs);
    timer.unref();
    try {
      return await run(controller.signal);
    } catch (error) {
      if (expired) throw timedOut();
      if (this.#closed) throw new DeliveryFailure("aborted", "aborted", `${what} was aborted: delivery stopped`);
      if (generation === this.#abandoned) {
        throw new DeliveryFailure("aborted", "aborted", `${what} was given up: the program is leaving`);
      }
      if (this.#generation !== generation) {
        throw new DeliveryFailure("transient", "connection_reset", `${what} was cut off: the connection was reset`);
      }
      // After any transport-level failure the connection may be half dead (a restarted server has forgotten
      // our MCP session): start afresh next time.
      if (!(error instanceof DeliveryFailure)) this.reset();
      throw (clientSdk && failureFromMcpError(clientSdk, error)) ?? error;
    } finally {
      clearTimeout(timer);
    }
  }

  #connect(signal: AbortSignal): Promise<Client> {
    if (this.#client) return Promise.resolve(this.#client);
    if (!this.#connecting) {
      const generation = this.#generation;
      const connecting = this.#open(signal, generation);
      this.#connecting = connecting;
      connecting.then(
        (client) => {
          if (this.#generation === generation) {
            this.#client = client;
            this.#connecting = undefined;
          }
        },
        () => {
          if (this.#generation === generation) this.#connecting = undefined;
        },
      );
    }
    return this.#connecting;
  }

  async #open(signal: AbortSignal, generation: number): Promise<Client> {
    const sdk = await loadClientSdk();
    const stdio = this.#options.transport.kind === "stdio";
    const client = new sdk.Client(CLIENT_INFO, {
      capabilities: {},
      jsonSchemaValidator: await schemaValidator(),
      versionNegotiation: {
        mode: "auto",
        // Over stdio a silent probe means a handshake-era server: leave time within our deadline for the handshake.
        probe: { timeoutMs: stdio ? Math.max(1, Math.floor(this.#options.timeoutMs / 2)) : this.#options.timeoutMs },
      },
    });
    detachRequestTimers(client);
    const transport = await this.#openTransport(sdk);
    if (this.#generation !== generation) {
      // Reset while the transport was being made: it was never this.#transport, so nothing else would close it.
      await transport.close().catch(() => {});
      throw new DeliveryFailure("aborted", "aborted", "connection was closed");
    }
    this.#transport = transport;
    client.onerror = (error) => this.#options.log.debug(`mcp transport: ${error.message}`);
    client.onclose = () => {
      if (this.#generation === generation) {
        this.#client = undefined;
        this.#connecting = undefined;
        this.#tools = undefined;
      }
    };
    if (!this.#recalled) {
      this.#recalled = true;
      this.#era ??= this.#options.eras?.recall();
    }
    const prior = this.#era;
    // Asked here, with no await between the answer and the probe starting (and #probing set), so that a
    // program found leaving while the SDK or the transport was loading never starts one.
    if (prior === undefined && this.#options.mayProbe?.() === false) {
      await transport.close().catch(() => {});
      throw new DeliveryFailure("aborted", "aborted", "connect was not started: the program is leaving");
    }
    try {
      if (this.#generation === generation) this.#probing = prior === undefined;
      try {
        await client.connect(transport, { signal, timeout: this.#options.timeoutMs, ...(prior ? { prior } : {}) });
      } finally {
        if (this.#generation === generation) this.#probing = false;
      }
      // Remembered at once: even if this attempt runs out of time later, the next connect skips the probe.
      this.#rememberEra(client);
      const listed = await client.listTools(undefined, { signal, timeout: this.#options.timeoutMs });
      if (this.#generation !== generation) throw new DeliveryFailure("aborted", "aborted", "connection was closed");
      this.#tools = new Set(listed.tools.map((t) => t.name));
      this.#options.log.debug(
        `connected over MCP ${client.getNegotiatedProtocolVersion() ?? "(unknown revision)"}, ${this.era} era${prior ? " (known from an earlier connect)" : ""}; tools: ${[...this.#tools].join(", ")}`,
      );
      return client;
    } catch (error) {
      if (this.#generation === generation) this.#learnFromFailedConnect(sdk, error, prior);
      client.close().catch(() => {});
      throw error;
    }
  }

  /** What a failed connect says about the tracker's era (`prior`: the era the connect assumed). */
  #learnFromFailedConnect(sdk: ClientSdk, error: unknown, prior: PriorDiscovery | undefined): void {
    if (prior && isEraMismatch(sdk, error)) {
      // The tracker answered, but not in the era it spoke before (upgraded or replaced): find out again next time.
      this.#era = undefined;
      this.#options.eras?.remember(undefined);
      this.#options.log.debug(`the tracker no longer answers in the ${prior.kind} era; the next connect probes again`);
    } else if (!prior && this.#options.transport.kind === "stdio" && isProbeCutOff(sdk, error)) {
      // The server, not our own reset, closed the connection on the probe: it predates server/discover.
      this.#era = { kind: "legacy" };
      this.#options.eras?.remember(this.#era);
      this.#options.log.debug("the tracker (stdio) ended on server/discover: handshake era from now on");
    }
  }

  #rememberEra(client: Client): void {
    const discover = client.getProtocolEra() === "modern" ? client.getDiscoverResult() : undefined;
    this.#era = discover ? { kind: "modern", discover } : { kind: "legacy" };
    this.#options.eras?.remember(this.#era);
  }

  async #openTransport(sdk: ClientSdk): Promise<Closer & Parameters<Client["connect"]>[0]> {
    const spec = this.#options.transport;
    if (spec.kind === "http") {
      const headers: Record<string, string> = {};
      if (this.#options.bearer !== undefined) headers.authorization = `Bearer ${this.#options.bearer}`;
      this.#fetch ??= detachedFetch();
      return new sdk.StreamableHTTPClientTransport(spec.url, {
        fetch: this.#fetch,
        requestInit: { headers },
        // A restarted tracker is found by our own retries; the SDK's own SSE reconnection would only add noise.
        reconnectionOptions: {
          maxRetries: 0,
          initialReconnectionDelay: 1000,
          maxReconnectionDelay: 1000,
          reconnectionDelayGrowFactor: 1,
        },
      });
    }
    const { getDefaultEnvironment } = await import("@modelcontextprotocol/client/stdio");
    const StdioClientTransport = await inPlaceStdioTransport();
    const env: Record<string, string> = { ...getDefaultEnvironment() };
    for (const [k, v] of Object.entries(this.#options.env)) if (v !== undefined) env[k] = v;
    env[ENV.delivery] = "off";
    const debug = this.#options.log.level === "debug";
    const stdio = new StdioClientTransport({
      command: spec.command,
      args: spec.args,
      env,
      // The server's log must never land in the operator's shell.
      stderr: debug ? "pipe" : "ignore",
    });
    if (debug) {
      stdio.stderr?.on("data", (chunk: Buffer) => this.#options.log.debug(`tracker (stdio): ${String(chunk).trim()}`));
    }
    return stdio;
  }
}
