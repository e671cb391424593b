/**
 * The MCP server: the SDK's low-level `Server`, so that `tools/list` shows
 * the contract's own JSON Schemas and `tools/call` validates with the
 * contract, answering invalid arguments with our structured error rather than
 * the SDK's generic text.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { VerifiedToken } from "../auth/jwt.ts";
import { TOOL_NAMES, TOOLS, type ToolName, toolInputJsonSchema, toolOutputJsonSchema } from "../contract/tools.ts";
import { version as packageVersion } from "../package-info.ts";
import { SERVER_NAME } from "./options.ts";
import type { ServerTelemetry } from "./telemetry.ts";
import { isToolName, TOOL_LIST, type TrackerTools } from "./tools.ts";

/** The OpenTelemetry convention for a value outside the known set. */
const UNKNOWN_TOOL = "_OTHER";

const READ_ONLY: ReadonlySet<ToolName> = new Set([TOOL_NAMES.health, TOOL_NAMES.list, TOOL_NAMES.get]);

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

function headerToken(extra: { authInfo?: { extra?: Record<string, unknown> } }): VerifiedToken | undefined {
  const value = extra.authInfo?.extra?.[AUTH_INFO_TOKEN_KEY];
  return value !== undefined ? (value as VerifiedToken) : undefined;
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
  const server = new Server(
    { name: SERVER_NAME, version: packageVersion },
    {
      capabilities: { tools: { listChanged: false } },
      instructions:
        "Session-Buddy-compatible tracker of admin shell sessions. Call track_session_start, then heartbeat_session while the shell lives, then track_session_end.",
      jsonSchemaValidator: sharedValidator,
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => {
    toolListing ??= listTools();
    return { tools: toolListing };
  });
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const { name, arguments: args, _meta } = request.params;
    // Tool names come from callers: unknown ones share one value, so they cannot blow up metric cardinality.
    const tool = isToolName(name) ? name : UNKNOWN_TOOL;
    return ctx.telemetry.toolCall(
      { tool, requestId: extra.requestId, transport: ctx.transport, mcpSessionId: extra.sessionId, meta: _meta },
      async () => {
        // The MCP spec answers an unknown tool with a protocol error, not a tool result.
        if (!isToolName(name)) {
          throw new McpError(
            ErrorCode.InvalidParams,
            `Unknown tool: ${name.slice(0, 100)}; this server has: ${TOOL_LIST.join(", ")}`,
          );
        }
        const answer = await ctx.tools.call(name, args ?? {}, {
          header: headerToken(extra),
          environment: ctx.environmentToken,
        });
        return { value: toCallToolResult(answer.result), outcome: answer.outcome };
      },
    );
  });
  return server;
}
