/**
 * What keeps the HTTP server bounded under hostile clients: a cap on open
 * connections that sheds the longest-idle one first, and a cap on requests
 * in flight, with a share kept back for callers that sent a verified
 * Authorization header.
 *
 * Node's own `server.maxConnections` refuses the newest connection when full,
 * which lets a crowd of idle sockets lock everyone else out; shedding the
 * longest-idle connection instead keeps room for clients that actually send
 * requests (a busy connection is never shed).
 */
import type { Server } from "node:http";
import type { Socket } from "node:net";

export class ConnectionLimiter {
  readonly #max: number;
  /** Connections with no request in progress, longest-idle first (a Map keeps insertion order). */
  readonly #idle = new Map<Socket, true>();
  readonly #shed = new WeakSet<Socket>();
  #open = 0;
  /** Connections closed to make room, since the last `takeShedCount()`. */
  #shedCount = 0;

  constructor(max: number) {
    this.#max = max;
  }

  attach(server: Server): void {
    server.on("connection", (socket: Socket) => this.#opened(socket));
    server.on("request", (req) => this.#busy(req.socket));
  }

  get open(): number {
    return this.#open;
  }

  /** A request on `socket` finished: it is idle again, and now the most recently used. */
  idle(socket: Socket): void {
    if (socket.destroyed || this.#shed.has(socket)) return;
    this.#idle.delete(socket);
    this.#idle.set(socket, true);
  }

  takeShedCount(): number {
    const n = this.#shedCount;
    this.#shedCount = 0;
    return n;
  }

  #opened(socket: Socket): void {
    this.#open++;
    this.#idle.set(socket, true);
    socket.once("close", () => {
      if (this.#shed.has(socket)) return;
      this.#open--;
      this.#idle.delete(socket);
    });
    if (this.#open > this.#max) this.#makeRoom(socket);
  }

  #busy(socket: Socket): void {
    this.#idle.delete(socket);
  }

  #makeRoom(newcomer: Socket): void {
    // The longest-idle connection, else (all busy) the newcomer itself.
    const victim = this.#idle.keys().next().value ?? newcomer;
    // Counted out now: its 'close' comes later, and connections arriving meanwhile must not shed more.
    this.#shed.add(victim);
    this.#idle.delete(victim);
    this.#open--;
    this.#shedCount++;
    victim.destroy();
  }
}

export type Release = () => void;

/** Slots for requests in flight; `undefined` from `enter` means "answer 503". */
export class RequestSlots {
  readonly #max: number;
  readonly #maxUnauthenticated: number;
  #inFlight = 0;
  #unauthenticated = 0;
  #refused = 0;

  constructor(max: number, maxUnauthenticated: number) {
    this.#max = max;
    this.#maxUnauthenticated = maxUnauthenticated;
  }

  enter(authenticated: boolean): Release | undefined {
    if (this.#inFlight >= this.#max || (!authenticated && this.#unauthenticated >= this.#maxUnauthenticated)) {
      this.#refused++;
      return undefined;
    }
    this.#inFlight++;
    if (!authenticated) this.#unauthenticated++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inFlight--;
      if (!authenticated) this.#unauthenticated--;
    };
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  takeRefusedCount(): number {
    const n = this.#refused;
    this.#refused = 0;
    return n;
  }
}
