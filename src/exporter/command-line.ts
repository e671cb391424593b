/**
 * Splitting `SESSION_BUDDY_COMMAND` into a program and its arguments, never
 * through a shell.
 *
 * Hand-rolled on purpose: the npm shell-word parsers also expand `$VARS`,
 * globs and operators, which is exactly what must not happen to a value that
 * is then executed. Only quoting is understood: '…' (literal), "…" (with \"
 * and \\ escapes) and backslash outside quotes. A JSON array of strings is also
 * accepted, for paths that are awkward to quote.
 */
import { OptionError } from "../option-error.ts";

export function splitCommandLine(text: string, variable: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new OptionError(`${variable} starts with "[" but is not a JSON array of strings`, variable);
    }
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((w) => typeof w === "string" && w !== "")) {
      throw new OptionError(`${variable} as JSON must be a non-empty array of non-empty strings`, variable);
    }
    return parsed as string[];
  }
  const words: string[] = [];
  let current = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < trimmed.length; i++) {
    const ch = trimmed[i] as string;
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else current += ch;
      continue;
    }
    if (quote === '"') {
      if (ch === '"') quote = undefined;
      else if (ch === "\\" && (trimmed[i + 1] === '"' || trimmed[i + 1] === "\\")) current += trimmed[++i];
      else current += ch;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === "\\" && i + 1 < trimmed.length) {
      current += trimmed[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(current);
      current = "";
      inWord = false;
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (quote !== undefined) {
    throw new OptionError(`${variable} has an unclosed ${quote} quote`, variable);
  }
  if (inWord) words.push(current);
  return words;
}
