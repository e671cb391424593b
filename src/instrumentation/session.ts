/**
 * The record of one shell session: when it started, what was evaluated, how
 * and when it ended.
 *
 * A session is recorded from the moment its REPLServer exists, before any
 * OpenTelemetry code is loaded; the instrumentation later turns the record
 * into a span (with the recorded start time) by attaching an observer. This
 * module stays free of OpenTelemetry imports for that reason.
 *
 * How each way out of a REPL is told apart: what happens just before the
 * REPL's `close()` is called. `.exit` arrives as a `line`, Ctrl-C as the
 * REPL's `SIGINT` event, Ctrl-D as a `keypress` on the input, end of a piped
 * input as the input's `end`. A listener placed in front of the REPL's own
 * notes the hint, `close()` takes it (the REPL emits `close` a tick later),
 * and a listener placed after the REPL's clears it when no `close()` followed.
 */
import type { EventEmitter } from "node:events";
import { type REPLServer, Recoverable } from "node:repl";
import { newEventId, newSessionIds, type SessionIds } from "../journal/ids.ts";
import type { Journal } from "../journal/journal.ts";
import type { EndLine, StartLine } from "../journal/records.ts";
import { registry } from "./registry.ts";
import { describeShell, type ResolvedShell } from "./shell.ts";
import type { ExitReason, ShellOptions, ShellSessionHandle } from "./types.ts";
import { writeDescription, writeEnd, writeTrace } from "./write-ahead.ts";

/** Wall-clock time in milliseconds since the epoch, with sub-millisecond precision. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** One evaluated input, as seen by the observer. */
export interface EvalScope {
  /** Runs the evaluation (e.g. inside a span's context) and returns its result. */
  run<T>(fn: () => T): T;
  /** The input finished; `error` is what it threw or rejected with, if anything. */
  end(error: unknown): void;
  /** The input was incomplete (the REPL asks for more lines): it is not an evaluation of its own. */
  discard(): void;
}

/** What turns a session record into telemetry (the instrumentation's span binding). */
export interface SessionObserver {
  readonly traceId: string;
  readonly spanId: string;
  beginEval(session: ShellSession, input: string): EvalScope | undefined;
  ended(session: ShellSession): void;
  /** Options changed after the observer attached. */
  reconfigured?(session: ShellSession): void;
}

type EvalCallback = (...args: unknown[]) => unknown;
type EvalFunction = (code: unknown, context: unknown, file: unknown, cb: EvalCallback) => unknown;

const EXIT_COMMAND = /^\s*\.exit\s*$/;

interface KeyInfo {
  name?: string;
  ctrl?: boolean;
  meta?: boolean;
}

function isEmitter(value: unknown): value is EventEmitter {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as EventEmitter).prependListener === "function" &&
    typeof (value as EventEmitter).removeListener === "function"
  );
}

export class ShellSession {
  /** The session's own ids, made when it starts (before any tracer exists). */
  readonly ids: SessionIds;
  /** The trace and span id of the session: the ones written ahead, or the span's once it has started. */
  traceIds: { traceId: string; spanId: string };
  /** The journal its start was written ahead to, if delivery is on. */
  journal: Journal | undefined;
  /** The start as written ahead (and refined since): what delivery sends. */
  startLine: StartLine | undefined;
  /** The end as written ahead, once ended. */
  endLine: EndLine | undefined;
  /** event_id of the end, once ended. */
  endEventId: string | undefined;
  /** The process's exit code, when the session ended because the process exited. */
  exitCode: number | undefined;
  readonly server: REPLServer;
  /** Epoch milliseconds. */
  readonly startTime: number;
  options: ShellOptions = {};
  /** The instrumentation's description of shells (applied once a span is bound). */
  #config: ShellOptions = {};
  evalCount = 0;
  evalErrorCount = 0;
  exitReason: ExitReason | undefined;
  /** Epoch milliseconds, once ended. */
  endTime: number | undefined;
  /** The error that ended the session, for `uncaught_error`. */
  fatalError: unknown;
  observer: SessionObserver | undefined;
  readonly bound: Promise<void>;
  #markBound: () => void;
  #hint: ExitReason | undefined;
  #closeReason: ExitReason | undefined;
  /** Settles the input being evaluated, if one is. */
  #settleCurrent: ((error: unknown) => void) | undefined;
  readonly #detach: Array<() => void> = [];

  constructor(server: REPLServer, startTime: number = now()) {
    this.server = server;
    this.startTime = startTime;
    this.ids = newSessionIds();
    this.traceIds = { traceId: this.ids.traceId, spanId: this.ids.spanId };
    let markBound = () => {};
    this.bound = new Promise<void>((resolve) => {
      markBound = resolve;
    });
    this.#markBound = markBound;
    this.#watchExits();
    this.#wrapEval();
  }

  /** `session.id`: a UUID v4, fresh for every shell, so two shells started in the same second never collide. */
  get id(): string {
    return this.ids.localId;
  }

  /** Who the shell belongs to, as known now. */
  get shell(): ResolvedShell {
    const className = (this.server as { constructor?: { name?: unknown } }).constructor?.name;
    return describeShell(this.options, this.#config, process.env, className);
  }

  /** The instrumentation's description of shells, under the component's own options. */
  applyConfig(config: ShellOptions): void {
    const before = this.shell;
    this.#config = definedOnly(config);
    writeDescription(this, before);
  }

  /** The session's span has other ids than the ones written ahead: the span's are the correlation id from now on. */
  adoptTrace(traceId: string, spanId: string): void {
    if (traceId === this.traceIds.traceId && spanId === this.traceIds.spanId) return;
    this.traceIds = { traceId, spanId };
    writeTrace(this);
  }

  get ended(): boolean {
    return this.exitReason !== undefined;
  }

  /** Applies a component's own description of the shell (later calls override earlier ones). */
  configure(options: ShellOptions): void {
    const before = this.shell;
    this.options = { ...this.options, ...definedOnly(options) };
    writeDescription(this, before);
    this.observer?.reconfigured?.(this);
  }

  /** Hands the session to its observer; an already-ended session is reported ended at once. */
  attach(observer: SessionObserver): void {
    if (this.observer !== undefined) return;
    this.observer = observer;
    this.#markBound();
    if (this.ended) {
      registry().live.delete(this);
      observer.ended(this);
    }
  }

  /** Ends the session once; later calls are ignored. Returns whether this call ended it. */
  end(reason: ExitReason, error?: unknown, exitCode?: number): boolean {
    if (this.ended) return false;
    this.exitReason = reason;
    this.endTime = now();
    this.fatalError = error;
    this.exitCode = exitCode;
    this.endEventId = newEventId();
    // First of all: on disk before anything that could fail or be cut short.
    writeEnd(this);
    for (const detach of this.#detach.splice(0)) detach();
    const reg = registry();
    reg.unflushed = true;
    for (const listener of reg.endListeners) listener(this);
    if (this.observer !== undefined) {
      reg.live.delete(this);
      this.observer.ended(this);
    }
    return true;
  }

  handle(): ShellSessionHandle {
    const session = this;
    return {
      get sessionId() {
        return session.id;
      },
      get traceId() {
        return session.observer?.traceId;
      },
      get spanId() {
        return session.observer?.spanId;
      },
      get ended() {
        return session.ended;
      },
      ready: session.bound,
      end(reason: ExitReason = "closed") {
        session.end(reason);
      },
    };
  }

  #listen(emitter: EventEmitter, event: string, listener: (...args: never[]) => void, first = false): void {
    const fn = listener as (...args: unknown[]) => void;
    if (first) emitter.prependListener(event, fn);
    else emitter.on(event, fn);
    this.#detach.push(() => emitter.removeListener(event, fn));
  }

  #watchExits(): void {
    const server = this.server as unknown as EventEmitter & { input?: unknown };
    this.#watchServerHints(server);
    const input = server.input;
    if (isEmitter(input)) this.#watchInputHints(input);
    // The default eval reports a failing input to the REPL's domain instead of its callback.
    const domain = (server as { _domain?: unknown })._domain;
    if (isEmitter(domain)) {
      this.#listen(
        domain,
        "error",
        (error: unknown) => {
          this.#settleCurrent?.(error ?? new Error("evaluation failed"));
        },
        true,
      );
    }
    this.#wrapClose();
    // Ahead of the REPL's own `close` listener, which emits `exit`: a host that shuts
    // its telemetry down on `exit` must find the session already ended.
    this.#listen(
      server,
      "close",
      () => {
        this.end(this.#closeReason ?? this.#hint ?? "closed");
      },
      true,
    );
  }

  /** `.exit` and Ctrl-C: hints noted ahead of the REPL's listeners, cleared after them. */
  #watchServerHints(server: EventEmitter): void {
    const clear = () => {
      this.#hint = undefined;
    };
    this.#listen(
      server,
      "line",
      (line: string) => {
        if (typeof line === "string" && EXIT_COMMAND.test(line)) this.#hint = "exit_command";
      },
      true,
    );
    this.#listen(server, "line", clear);
    this.#listen(
      server,
      "SIGINT",
      () => {
        this.#hint = "sigint";
      },
      true,
    );
    this.#listen(server, "SIGINT", clear);
  }

  /** Ctrl-D and the end of a piped input, seen on the REPL's input stream. */
  #watchInputHints(input: EventEmitter): void {
    this.#listen(
      input,
      "keypress",
      (_sequence: string, key: KeyInfo | undefined) => {
        if (key?.ctrl && !key.meta && key.name === "d") this.#hint = "eof";
      },
      true,
    );
    this.#listen(input, "keypress", () => {
      this.#hint = undefined;
    });
    this.#listen(
      input,
      "end",
      () => {
        this.#hint ??= "eof";
      },
      true,
    );
  }

  /** Takes the hint at the moment the REPL decides to close (the REPL defers its `close` event). */
  #wrapClose(): void {
    const server = this.server as unknown as { close: unknown };
    const original = server.close;
    if (typeof original !== "function") return;
    const session = this;
    const wrapped = function trackedClose(this: unknown, ...args: unknown[]) {
      session.#closeReason ??= session.#hint ?? "closed";
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
    server.close = wrapped;
    this.#detach.push(() => {
      if (server.close === wrapped) server.close = original;
    });
  }

  /**
   * Counts inputs and lets the observer run each one in the session's trace
   * context. The REPL calls `this.eval(...)` for every complete input, so
   * the instance property is the one place every input passes through,
   * whatever eval function the host configured.
   */
  #wrapEval(): void {
    const server = this.server as unknown as { eval: unknown };
    const original = server.eval;
    if (typeof original !== "function") return;
    const evaluate = original as EvalFunction;
    const session = this;
    const wrapped: EvalFunction = function trackedEval(this: unknown, code, context, file, cb) {
      if (session.ended || typeof code !== "string" || code.trim() === "" || typeof cb !== "function") {
        return evaluate.call(this, code, context, file, cb);
      }
      const scope = session.observer?.beginEval(session, code);
      let settled = false;
      const settle = (error: unknown) => {
        if (settled) return;
        settled = true;
        if (session.#settleCurrent === settle) session.#settleCurrent = undefined;
        if (error instanceof Recoverable) {
          scope?.discard();
          return;
        }
        session.evalCount++;
        if (error) session.evalErrorCount++;
        scope?.end(error || undefined);
      };
      session.#settleCurrent = settle;
      const done: EvalCallback = function (this: unknown, ...args: unknown[]) {
        settle(args[0]);
        return cb.apply(this, args);
      };
      const run = () => evaluate.call(this, code, context, file, done);
      try {
        return scope ? scope.run(run) : run();
      } catch (error) {
        settle(error ?? new Error("evaluation failed"));
        throw error;
      }
    };
    server.eval = wrapped;
    this.#detach.push(() => {
      if (server.eval === wrapped) server.eval = original;
    });
  }
}

function definedOnly(options: ShellOptions): ShellOptions {
  const out: ShellOptions = {};
  if (options.component !== undefined) out.component = options.component;
  if (options.shellType !== undefined) out.shellType = options.shellType;
  if (options.version !== undefined) out.version = options.version;
  if (options.adapters !== undefined) out.adapters = [...options.adapters];
  return out;
}
