/**
 * What each tool does: authenticate, validate with the contract, act on the
 * store, and answer with the contract's result shape. Every failure is a
 * structured result (`status: "error"`, an `error` naming the field, and our
 * `code`/`issues`), never a thrown error or a bare string.
 *
 * Order inside a tool: authenticate, validate, authorize, then write. So an
 * unauthenticated or invalid call writes nothing. Events reach the store
 * without their `token`: a credential is never stored.
 */
import { SCOPE_READ, SCOPE_WRITE } from "../auth/jwt.ts";
import { ContractError } from "../contract/errors.ts";
import type { SessionEndEvent, SessionRecord, SessionStartEvent } from "../contract/schemas.ts";
import {
  TOOL_NAMES,
  TOOLS,
  type ToolName,
  validateBatchEnvelope,
  validateBatchItem,
  validateEndEvent,
  validateGetQuery,
  validateHeartbeat,
  validateListQuery,
  validateStartEvent,
} from "../contract/tools.ts";
import { version as packageVersion } from "../package-info.ts";
import { StoreTimeoutError, storeFailure, withinTimeout } from "../store/failures.ts";
import { assertNotAhead, localSessionIdOf } from "../store/records.ts";
import type { SessionStore } from "../store/types.ts";
import { authenticate, type CallCredentials, type Identity, requireComponent, requireScope } from "./auth.ts";
import { HealthProbe } from "./health.ts";
import type { Logger } from "./log.ts";
import { LogThrottle } from "./log-throttle.ts";
import {
  type AuthMode,
  DEFAULT_MAX_CLOCK_SKEW_SECONDS,
  DEFAULT_STORE_TIMEOUT_SECONDS,
  SERVER_NAME,
} from "./options.ts";
import type { ServerTelemetry, ToolCallOutcome } from "./telemetry.ts";

export type ToolResult = Record<string, unknown>;

export interface ToolAnswer {
  result: ToolResult;
  outcome: ToolCallOutcome;
}

export interface TrackerDeps {
  store: SessionStore;
  auth: AuthMode;
  leaseSeconds: number;
  telemetry: ServerTelemetry;
  log: Logger;
  /** The server's clock; the lease runs on it. */
  now?: () => Date;
  /** A tool call that waits longer than this on the store answers `unavailable`. Default 4 s. */
  storeTimeoutMs?: number;
  /** Starts and ends stamped further ahead of `now` are refused. Default 300 s. */
  maxClockSkewSeconds?: number;
}

export const TOOL_LIST: readonly ToolName[] = Object.values(TOOL_NAMES);

/** Fields the error result of each tool must carry besides status/error, so it still parses as that tool's result. */
const ERROR_SHAPE: Record<ToolName, ToolResult> = {
  [TOOL_NAMES.start]: { session_id: null },
  [TOOL_NAMES.end]: { session_id: null },
  [TOOL_NAMES.heartbeat]: { session_id: null },
  [TOOL_NAMES.list]: { sessions: [], next_cursor: null },
  [TOOL_NAMES.get]: { session: null },
  [TOOL_NAMES.health]: {},
  [TOOL_NAMES.batch]: { results: [] },
};

export function isToolName(name: string): name is ToolName {
  return (TOOL_LIST as readonly string[]).includes(name);
}

function argumentsObject(args: unknown): Record<string, unknown> {
  return args !== null && typeof args === "object" && !Array.isArray(args) ? (args as Record<string, unknown>) : {};
}

/** What a call's span and metrics say of the session it touched. */
function sessionFacts(session: SessionRecord): Pick<ToolCallOutcome, "sessionId" | "localSessionId" | "component"> {
  return {
    sessionId: session.session_id,
    localSessionId: localSessionIdOf(session.metadata) ?? undefined,
    component: session.component_name,
  };
}

function notFound(tool: ToolName, sessionId: string): ToolAnswer {
  const error = new ContractError("not_found", `session_id: no session with this id exists`, [
    { field: "session_id", constraint: "must name a session this tracker has recorded", received: "a string" },
  ]);
  const result: ToolResult =
    tool === TOOL_NAMES.get
      ? { ...error.toResult(), status: "not_found", session: null }
      : { ...error.toResult(), status: "not_found", session_id: sessionId };
  return { result, outcome: { status: "not_found", errorType: "not_found", sessionId } };
}

export class TrackerTools {
  readonly #deps: TrackerDeps;
  readonly #now: () => Date;
  readonly #timeoutMs: number;
  readonly #skewSeconds: number;
  readonly #health: HealthProbe;
  /** Store failures are logged, but a hung database must not turn every call into a log line. */
  readonly #logThrottle: LogThrottle;

  constructor(deps: TrackerDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? (() => new Date());
    this.#timeoutMs = deps.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_SECONDS * 1000;
    this.#skewSeconds = deps.maxClockSkewSeconds ?? DEFAULT_MAX_CLOCK_SKEW_SECONDS;
    this.#health = new HealthProbe(deps.store, this.#timeoutMs, this.#now);
    this.#logThrottle = new LogThrottle(deps.log);
  }

  /** Answers one tool call. Never throws. */
  async call(tool: string, args: unknown, credentials: Omit<CallCredentials, "argument">): Promise<ToolAnswer> {
    if (!isToolName(tool)) {
      const error = new ContractError(
        "invalid_argument",
        `name: unknown tool "${tool.slice(0, 100)}"; this server has: ${TOOL_LIST.join(", ")}`,
        [{ field: "name", constraint: `must be one of ${TOOL_LIST.join(", ")}`, received: "a string" }],
      );
      return { result: error.toResult(), outcome: { status: "error", errorType: error.code } };
    }
    const input = argumentsObject(args);
    let answer: ToolAnswer;
    try {
      const work = this.#dispatch(tool, input, { ...credentials, argument: input.token });
      // health_check bounds its own probe; every other call gets one deadline for all its store work.
      answer = tool === TOOL_NAMES.health ? await work : await withinTimeout(work, this.#timeoutMs);
    } catch (error) {
      answer = this.#errorAnswer(tool, error, input);
    }
    const output = TOOLS[tool].output;
    if (output) {
      // Our results must match the listed output schema, which forbids extra fields.
      const checked = output.safeParse(answer.result);
      if (!checked.success) {
        this.#deps.log.error(`${tool} produced a result outside its output schema: ${checked.error.message}`);
        return this.#errorAnswer(tool, new Error("result outside the output schema"), input);
      }
      answer.result = checked.data as ToolResult;
    }
    return answer;
  }

  #errorAnswer(tool: ToolName, error: unknown, input: Record<string, unknown>): ToolAnswer {
    let contractError: ContractError;
    if (error instanceof ContractError) {
      contractError = error;
    } else {
      // A store failure: the details (which may name hosts or paths) go to the log, not to the caller.
      this.#logThrottle.write("error", `${tool} failed`, () => {
        return `${tool} failed: ${error instanceof Error ? error.message : String(error)}`;
      });
      contractError = new ContractError(
        "unavailable",
        error instanceof StoreTimeoutError
          ? `the tracker's session store did not answer within ${error.timeoutMs} ms; retry later (retrying is safe: events are de-duplicated by event id)`
          : `the tracker's session store failed (${storeFailure(error)}); retry later (the event was not recorded)`,
      );
    }
    const sessionId = typeof input.session_id === "string" ? input.session_id : undefined;
    return {
      result: { ...ERROR_SHAPE[tool], ...contractError.toResult() },
      outcome: { status: "error", errorType: contractError.code, sessionId },
    };
  }

  async #dispatch(tool: ToolName, input: Record<string, unknown>, credentials: CallCredentials): Promise<ToolAnswer> {
    switch (tool) {
      case TOOL_NAMES.health:
        return this.#healthCheck(credentials);
      case TOOL_NAMES.start:
        return this.#start(input, credentials);
      case TOOL_NAMES.end:
        return this.#end(input, credentials);
      case TOOL_NAMES.heartbeat:
        return this.#heartbeat(input, credentials);
      case TOOL_NAMES.list:
        return this.#list(input, credentials);
      case TOOL_NAMES.get:
        return this.#get(input, credentials);
      case TOOL_NAMES.batch:
        return this.#batch(input, credentials);
    }
  }

  /**
   * Without credentials (auth on), only `status`: a load balancer needs no
   * more, and versions, settings and counts are for callers with a token
   * that may read. A token that is given must be valid.
   */
  async #healthCheck(credentials: CallCredentials): Promise<ToolAnswer> {
    const { store, auth, leaseSeconds, telemetry } = this.#deps;
    const anonymous =
      auth.kind === "jwt" &&
      credentials.header === undefined &&
      credentials.environment === undefined &&
      (credentials.argument === undefined || credentials.argument === null);
    const identity = anonymous ? undefined : await authenticate(auth, credentials);
    if (identity !== undefined) requireScope(identity, SCOPE_READ, TOOL_NAMES.health);
    const report = await this.#health.check();
    const outcome = { status: report.status };
    if (anonymous) return { result: { status: report.status }, outcome };
    return {
      result: {
        status: report.status,
        ...(report.reason !== undefined ? { reason: report.reason } : {}),
        server: SERVER_NAME,
        version: packageVersion,
        store: store.kind,
        auth: auth.kind,
        lease_seconds: leaseSeconds,
        active_sessions: telemetry.active,
      },
      outcome,
    };
  }

  async #start(input: Record<string, unknown>, credentials: CallCredentials): Promise<ToolAnswer> {
    const identity = await authenticate(this.#deps.auth, credentials);
    const { token: _token, ...event } = validateStartEvent(input);
    requireScope(identity, SCOPE_WRITE, TOOL_NAMES.start);
    return this.#recordStart(event, identity);
  }

  /** A start that is authenticated and valid: authorised for its component, then recorded. */
  async #recordStart(event: Omit<SessionStartEvent, "token">, identity: Identity | null): Promise<ToolAnswer> {
    requireComponent(identity, event.component_name, "component_name");
    const receivedAt = this.#now();
    assertNotAhead("timestamp", event.timestamp, receivedAt, this.#skewSeconds);
    const { session, created } = await this.#deps.store.recordStart(event, receivedAt);
    if (created) this.#deps.telemetry.sessionStarted(session.component_name);
    return {
      result: { session_id: session.session_id, status: "tracked", ...(created ? {} : { replayed: true }) },
      outcome: { status: "tracked", ...sessionFacts(session) },
    };
  }

  /** The session, if it exists and the caller may touch it. */
  async #ownedSession(sessionId: string, identity: Identity | null) {
    const session = await this.#deps.store.getSession(sessionId);
    if (session) requireComponent(identity, session.component_name, "session_id");
    return session;
  }

  async #end(input: Record<string, unknown>, credentials: CallCredentials): Promise<ToolAnswer> {
    const identity = await authenticate(this.#deps.auth, credentials);
    const { token: _token, ...event } = validateEndEvent(input);
    requireScope(identity, SCOPE_WRITE, TOOL_NAMES.end);
    return this.#recordEnd(event, identity);
  }

  /** An end that is authenticated and valid: authorised for its session's component, then recorded. */
  async #recordEnd(event: Omit<SessionEndEvent, "token">, identity: Identity | null): Promise<ToolAnswer> {
    const receivedAt = this.#now();
    assertNotAhead("timestamp", event.timestamp, receivedAt, this.#skewSeconds);
    const before = await this.#ownedSession(event.session_id, identity);
    if (!before) return notFound(TOOL_NAMES.end, event.session_id);
    const outcome = await this.#deps.store.recordEnd(event, receivedAt);
    if (outcome.status === "not_found") return notFound(TOOL_NAMES.end, event.session_id);
    const { session, alreadyEnded } = outcome;
    if (!alreadyEnded) {
      this.#deps.telemetry.sessionEnded(session.component_name, session.exit_reason, before.status === "active");
    }
    return {
      result: {
        session_id: session.session_id,
        status: "ended",
        ...(session.duration_seconds !== null ? { duration_seconds: session.duration_seconds } : {}),
      },
      outcome: { status: "ended", ...sessionFacts(session) },
    };
  }

  /**
   * Many starts and ends: the call is authenticated and its envelope checked
   * once, then each event goes the way its own call would, and is answered at
   * its index. They are all asked of the store at once: in the SQLite store
   * they then share one commit (group commit), each still in its own
   * savepoint; in PostgreSQL each is its own transaction on the pool.
   */
  async #batch(input: Record<string, unknown>, credentials: CallCredentials): Promise<ToolAnswer> {
    const identity = await authenticate(this.#deps.auth, credentials);
    const { events } = validateBatchEnvelope(input);
    requireScope(identity, SCOPE_WRITE, TOOL_NAMES.batch);
    const results = await Promise.all(
      events.map(async (item, index) => {
        let tool: ToolName = TOOL_NAMES.start;
        try {
          const checked = validateBatchItem(item, index);
          if (checked.kind === "start") return (await this.#recordStart(checked.event, identity)).result;
          tool = TOOL_NAMES.end;
          return (await this.#recordEnd(checked.event, identity)).result;
        } catch (error) {
          return this.#errorAnswer(tool, error, argumentsObject(item)).result;
        }
      }),
    );
    return {
      result: { status: "ok", results },
      outcome: { status: "ok", component: identity?.component },
    };
  }

  async #heartbeat(input: Record<string, unknown>, credentials: CallCredentials): Promise<ToolAnswer> {
    const identity = await authenticate(this.#deps.auth, credentials);
    const { token: _token, ...event } = validateHeartbeat(input);
    requireScope(identity, SCOPE_WRITE, TOOL_NAMES.heartbeat);
    const before = await this.#ownedSession(event.session_id, identity);
    if (!before) return notFound(TOOL_NAMES.heartbeat, event.session_id);
    const receivedAt = this.#now();
    const outcome = await this.#deps.store.recordHeartbeat(event, receivedAt);
    if (outcome.status === "not_found") return notFound(TOOL_NAMES.heartbeat, event.session_id);
    const { session } = outcome;
    const answerOutcome = sessionFacts(session);
    if (outcome.status === "ended") {
      return {
        result: { session_id: session.session_id, status: "ended" },
        outcome: { status: "ended", ...answerOutcome },
      };
    }
    if (outcome.revived) this.#deps.telemetry.sessionRevived();
    const leaseExpiresAt = new Date(receivedAt.getTime() + this.#deps.leaseSeconds * 1000).toISOString();
    return {
      result: { session_id: session.session_id, status: "alive", lease_expires_at: leaseExpiresAt },
      outcome: { status: "alive", ...answerOutcome },
    };
  }

  async #list(input: Record<string, unknown>, credentials: CallCredentials): Promise<ToolAnswer> {
    const identity = await authenticate(this.#deps.auth, credentials);
    const { token: _token, ...query } = validateListQuery(input);
    requireScope(identity, SCOPE_READ, TOOL_NAMES.list);
    if (identity !== null) {
      if (query.component_name !== undefined) requireComponent(identity, query.component_name, "component_name");
      // A token sees only its own component's sessions, whether or not it asked for a filter.
      query.component_name = identity.component;
    }
    const page = await this.#deps.store.listSessions(query);
    return {
      result: { status: "ok", sessions: page.sessions, next_cursor: page.nextCursor },
      outcome: { status: "ok", component: identity?.component },
    };
  }

  async #get(input: Record<string, unknown>, credentials: CallCredentials): Promise<ToolAnswer> {
    const identity = await authenticate(this.#deps.auth, credentials);
    const query = validateGetQuery(input);
    requireScope(identity, SCOPE_READ, TOOL_NAMES.get);
    const session: SessionRecord | undefined = await this.#ownedSession(query.session_id, identity);
    if (!session) return notFound(TOOL_NAMES.get, query.session_id);
    return {
      result: { status: "ok", session },
      outcome: { status: "ok", ...sessionFacts(session) },
    };
  }
}
