/**
 * The MCP server: the SDK's low-level `Server`, so that `tools/list` shows
 * the contract's own JSON Schemas and `tools/call` validates with the
 * contract, answering invalid arguments with our structured error rather than
 * the SDK's generic text.
 *
 * One instance serves one HTTP request or one stdio connection, in either
 * protocol era: the serving entries (mcp-http.ts, stdio.ts) pick the era and
 * hand the instance its requests. The handlers are the same for both eras.
 */
import {
  type CallToolResult,
  PROTOCOL_VERSION_META_KEY,
  ProtocolError,
  ProtocolErrorCode,
  Server,
  type ServerContext,
  type Tool,
} from "@modelcontextprotocol/server";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/server/validators/ajv";
import type { VerifiedToken } from "../auth/jwt.ts";
import { TOOL_NAMES, TOOLS, type ToolName, toolInputJsonSchema, toolOutputJsonSchema } from "../contract/tools.ts";
import { version as packageVersion } from "../package-info.ts";
import type { Logger } from "./log.ts";
import { SERVER_NAME } from "./options.ts";
import type { ServerTelemetry } from "./telemetry.ts";
import { isToolName, TOOL_LIST, type TrackerTools } from "./tools.ts";

/** The OpenTelemetry convention for a value outside the known set. */
const UNKNOWN_TOOL = "_OTHER";

const READ_ONLY: ReadonlySet<ToolName> = new Set([TOOL_NAMES.health, TOOL_NAMES.list, TOOL_NAMES.get]);

const INSTRUCTIONS =
  "Session-Buddy-compatible tracker of admin shell sessions. Call track_session_start, then heartbeat_session while the shell lives, then track_session_end; track_session_events takes many starts and ends in one call.";

/** Built once: the listing is the same for every request. */
function listTools(): Tool[] {
  return TOOL_LIST.map((name) => {
    const outputSchema = toolOutputJsonSchema(name);
    return {
      name,
      description: TOOLS[name].description,
      inputSchema: toolInputJsonSchema(name),
      ...(outputSchema ? { outputSchema } : {}),
      annotations: READ_ONLY.has(name)
        ? { readOnlyHint: true, openWorldHint: false }
        : { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    } as Tool;
  });
}

let toolListing: Tool[] | undefined;

// One validator for every per-request server: building an Ajv instance per HTTP request would cost more than the call.
let sharedValidator: AjvJsonSchemaValidator | undefined;

export interface McpServerContext {
  tools: TrackerTools;
  telemetry: ServerTelemetry;
  transport: "tcp" | "pipe";
  /** Over stdio: the token the server was started with, used when a call carries none. */
  environmentToken?: string | undefined;
}

/** The verified Bearer token travels from the HTTP layer in `authInfo.extra`. */
export const AUTH_INFO_TOKEN_KEY = "verifiedToken";

function headerToken(ctx: ServerContext): VerifiedToken | undefined {
  const value = ctx.http?.authInfo?.extra?.[AUTH_INFO_TOKEN_KEY];
  return value !== undefined ? (value as VerifiedToken) : undefined;
}

/**
 * The revision this request is served under: its own `_meta` claim in the
 * stateless era; in the handshake era the version `initialize` settled (stdio)
 * or, per request over HTTP, the `MCP-Protocol-Version` header.
 */
function protocolVersionOf(server: Server, ctx: ServerContext): string | undefined {
  // The SDK types the envelope as opaque; the key and its string value are the spec's.
  const claimed = (ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.[PROTOCOL_VERSION_META_KEY];
  if (typeof claimed === "string") return claimed;
  return server.getNegotiatedProtocolVersion() ?? ctx.http?.req?.headers.get("mcp-protocol-version") ?? undefined;
}

export function toCallToolResult(result: Record<string, unknown>): CallToolResult {
  return {
    // Session-Buddy-era clients read the JSON text; current ones read structuredContent.
    content: [{ type: "text", text: JSON.stringify(result) }],
    structuredContent: result,
    ...(result.status === "error" ? { isError: true } : {}),
  };
}

export function createMcpServer(ctx: McpServerContext): Server {
  sharedValidator ??= new AjvJsonSchemaValidator();
  // Deprecated in favour of McpServer, which would answer invalid arguments with its own text: see the module comment.
  const server = new Server(
    { name: SERVER_NAME, version: packageVersion },
    {
      capabilities: { tools: { listChanged: false } },
      instructions: INSTRUCTIONS,
      jsonSchemaValidator: sharedValidator,
    },
  );
  server.setRequestHandler("tools/list", async () => {
    toolListing ??= listTools();
    return { tools: toolListing };
  });
  server.setRequestHandler("tools/call", async (request, call) => {
    const { name, arguments: args, _meta } = request.params;
    // Tool names come from callers: unknown ones share one value, so they cannot blow up metric cardinality.
    const tool = isToolName(name) ? name : UNKNOWN_TOOL;
    const facts = {
      tool,
      requestId: call.mcpReq.id,
      transport: ctx.transport,
      mcpSessionId: call.sessionId,
      protocolVersion: protocolVersionOf(server, call),
      meta: _meta,
    };
    return ctx.telemetry.toolCall(facts, async () => {
      // The MCP spec answers an unknown tool with a protocol error, not a tool result.
      if (!isToolName(name)) {
        throw new ProtocolError(
          ProtocolErrorCode.InvalidParams,
          `Unknown tool: ${name.slice(0, 100)}; this server has: ${TOOL_LIST.join(", ")}`,
        );
      }
      const answer = await ctx.tools.call(name, args ?? {}, {
        header: headerToken(call),
        environment: ctx.environmentToken,
      });
      return { value: toCallToolResult(answer.result), outcome: answer.outcome };
    });
  });
  return server;
}

/**
 * The serving entries report, besides real failures, every request they
 * refuse at the protocol level (a wrong envelope, routing headers that do
 * not match the body). Those are answered to the caller and say nothing
 * about this server, so only the rest reaches the log.
 */
export function mcpEntryErrorLogger(log: Logger, where: string): (error: Error) => void {
  return (error) => {
    if (error instanceof ProtocolError || /^Rejected /.test(error.message)) return;
    log.warn(`MCP (${where}): ${error.message}`);
  };
}
