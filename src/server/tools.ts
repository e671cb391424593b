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
import type { SessionRecord } from "../contract/schemas.ts";
import {
  TOOL_NAMES,
  TOOLS,
  type ToolName,
  validateEndEvent,
  validateGetQuery,
  validateHeartbeat,
  validateListQuery,
  validateStartEvent,
} from "../contract/tools.ts";
import { version as packageVersion } from "../package-info.ts";
import type { SessionStore } from "../store/types.ts";
import { authenticate, type CallCredentials, requireComponent, requireScope } from "./auth.ts";
import type { Logger } from "./log.ts";
import { type AuthMode, SERVER_NAME } from "./options.ts";
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
};

export function isToolName(name: string): name is ToolName {
  return (TOOL_LIST as readonly string[]).includes(name);
}

function argumentsObject(args: unknown): Record<string, unknown> {
  return args !== null && typeof args === "object" && !Array.isArray(args) ? (args as Record<string, unknown>) : {};
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

  constructor(deps: TrackerDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? (() => new Date());
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
      answer = await this.#dispatch(tool, input, { ...credentials, argument: input.token });
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
      this.#deps.log.error(`${tool} failed: ${error instanceof Error ? error.message : String(error)}`);
      contractError = new ContractError(
        "unavailable",
        "the tracker could not reach its session store; retry later (the event was not recorded)",
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
        return this.#health();
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
    }
  }

  async #health(): Promise<ToolAnswer> {
    const { store, auth, leaseSeconds, telemetry } = this.#deps;
    const base = {
      server: SERVER_NAME,
      version: packageVersion,
      store: store.kind,
      auth: auth.kind,
      lease_seconds: leaseSeconds,
    };
    try {
      await store.ping();
    } catch (error) {
      this.#deps.log.error(
        `health_check: store ping failed: ${error instanceof Error ? error.message : String(error)}`,
      );
      return {
        result: { ...base, status: "error", code: "unavailable", error: "the session store does not answer" },
        outcome: { status: "error", errorType: "unavailable" },
      };
    }
    return {
      result: { ...base, status: "healthy", active_sessions: telemetry.active },
      outcome: { status: "healthy" },
    };
  }

  async #start(input: Record<string, unknown>, credentials: CallCredentials): Promise<ToolAnswer> {
    const identity = await authenticate(this.#deps.auth, credentials);
    const { token: _token, ...event } = validateStartEvent(input);
    requireScope(identity, SCOPE_WRITE, TOOL_NAMES.start);
    requireComponent(identity, event.component_name, "component_name");
    const { session, created } = await this.#deps.store.recordStart(event, this.#now());
    if (created) this.#deps.telemetry.sessionStarted(session.component_name);
    return {
      result: { session_id: session.session_id, status: "tracked", ...(created ? {} : { replayed: true }) },
      outcome: { status: "tracked", sessionId: session.session_id, component: session.component_name },
    };
  }

  /** The session, if it exists and the caller may touch it. */
  async #ownedSession(sessionId: string, identity: Parameters<typeof requireComponent>[0]) {
    const session = await this.#deps.store.getSession(sessionId);
    if (session) requireComponent(identity, session.component_name, "session_id");
    return session;
  }

  async #end(input: Record<string, unknown>, credentials: CallCredentials): Promise<ToolAnswer> {
    const identity = await authenticate(this.#deps.auth, credentials);
    const { token: _token, ...event } = validateEndEvent(input);
    requireScope(identity, SCOPE_WRITE, TOOL_NAMES.end);
    const before = await this.#ownedSession(event.session_id, identity);
    if (!before) return notFound(TOOL_NAMES.end, event.session_id);
    const outcome = await this.#deps.store.recordEnd(event, this.#now());
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
      outcome: { status: "ended", sessionId: session.session_id, component: session.component_name },
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
    const answerOutcome = { sessionId: session.session_id, component: session.component_name };
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
      outcome: { status: "ok", sessionId: session.session_id, component: session.component_name },
    };
  }
}
