/**
 * Reading tool results as MCP CallToolResults.
 *
 * A server may answer with structuredContent, with a JSON text item, or (the
 * real Session-Buddy on auth failure) with a bare string. The Python client
 * this project replaces failed exactly here, so every shape is handled and an
 * unreadable one becomes a ContractError, never a crash.
 */
import type { z } from "zod";
import { ContractError, capLength } from "./errors.ts";
import { sanitizeText } from "./sanitize.ts";

export interface CallToolResultLike {
  content?: unknown;
  structuredContent?: unknown;
  isError?: unknown;
}

const JWT_LIKE = /eyJ[\w-]{2,}\.[\w-]{2,}\.[\w-]*/g;
const AUTH_WORDS = /\b(auth\w*|token|unauthori[sz]ed|forbidden|jwt|signature|expired|permission)\b/i;

/**
 * Whether a tracker's bare error text is about credentials. The real
 * Session-Buddy answers an auth failure with a string alone, so its words
 * are all there is to go by; every reader of such text asks here.
 */
export function mentionsCredentials(text: string): boolean {
  return AUTH_WORDS.test(text);
}

/** Text a server sent back, made safe to log: no control characters, no JWTs, bounded. */
export function safeServerText(text: string): string {
  return capLength(sanitizeText(text, 300).replace(JWT_LIKE, "[redacted token]"), 300);
}

function firstJsonObject(content: unknown): Record<string, unknown> | undefined {
  if (!Array.isArray(content)) return undefined;
  for (const item of content) {
    if (item === null || typeof item !== "object") continue;
    const { type, text } = item as { type?: unknown; text?: unknown };
    if (type !== "text" || typeof text !== "string") continue;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
        return parsed as Record<string, unknown>;
      }
    } catch {
      // Not JSON: maybe the next item is.
    }
  }
  return undefined;
}

function allText(content: unknown): string {
  if (!Array.isArray(content)) return "";
  return content
    .filter((i): i is { type: "text"; text: string } => i?.type === "text" && typeof i.text === "string")
    .map((i) => i.text)
    .join(" ");
}

/**
 * Parse a CallToolResult into the tool's result schema. Results with
 * `status: "error"` are returned, not thrown: they are valid answers.
 * Throws ContractError when the result cannot be read as that schema.
 */
export function parseToolResult<S extends z.ZodType>(result: CallToolResultLike, schema: S, tool: string): z.output<S> {
  const structured = result.structuredContent;
  const candidate =
    structured !== null && typeof structured === "object" && !Array.isArray(structured)
      ? structured
      : firstJsonObject(result.content);
  if (candidate !== undefined) {
    const parsed = schema.safeParse(candidate);
    if (parsed.success) return parsed.data as z.output<S>;
    throw ContractError.fromZod(`${tool} result`, parsed.error as z.ZodError, candidate);
  }
  const text = allText(result.content);
  if (mentionsCredentials(text)) {
    throw new ContractError("unauthenticated", `${tool} was refused: ${safeServerText(text)}`);
  }
  const what = result.isError === true ? "an error" : "a result";
  const shown = text.length > 0 ? `: ${safeServerText(text)}` : " with no text";
  throw new ContractError("internal", `${tool} answered ${what} that is not a ${tool} result${shown}`);
}
