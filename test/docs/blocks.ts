/**
 * The shell commands of a Markdown document: its fenced blocks whose info
 * string is a shell (`sh`, `bash`, `shell`, `console`), each split into
 * commands (continuation lines joined, comments and blank lines dropped). A
 * block preceded by `<!-- doc-test: skip, REASON -->` is kept with its reason
 * and not run.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface DocBlock {
  /** e.g. `docs/quick-start.md:31`, the line of the opening fence. */
  where: string;
  commands: string[];
  /** Why the block is not run (the marker's reason), if it is marked. */
  skip?: string;
}

const SHELL_INFO = /^(?:sh|bash|shell|console)\b/;
const SKIP_MARKER = /^<!--\s*doc-test:\s*skip,\s*(.+?)\s*-->$/;

/** Drops a comment: a `#` at the start of a word, outside quotes. */
function withoutComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === "#" && (i === 0 || /\s/.test(line[i - 1] ?? ""))) {
      return line.slice(0, i).trimEnd();
    }
  }
  return line.trimEnd();
}

export function commandsOf(body: string[]): string[] {
  const commands: string[] = [];
  let pending = "";
  for (const raw of body) {
    const line = withoutComment(raw);
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const command = `${pending}${line.trim()}`.trim();
    pending = "";
    if (command !== "") commands.push(command.replace(/\s+/g, " "));
  }
  return commands;
}

export function shellBlocks(root: string, file: string): DocBlock[] {
  const lines = readFileSync(join(root, file), "utf8").split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i] ?? "");
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && line.startsWith("```"));
    if (end < 0) throw new Error(`${file}:${i + 1}: a fence that never closes`);
    if (SHELL_INFO.test(open[1]?.trim() ?? "")) {
      const skip = SKIP_MARKER.exec(lines[i - 1]?.trim() ?? "")?.[1];
      blocks.push({
        where: `${file}:${i + 1}`,
        commands: commandsOf(lines.slice(i + 1, end)),
        ...(skip !== undefined ? { skip } : {}),
      });
    }
    i = end;
  }
  return blocks;
}
