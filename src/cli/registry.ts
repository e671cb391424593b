/** The subcommands, their one-line summaries, and how to load each. */
export interface Command {
  /** Runs the subcommand; resolves to the process exit code. `--help` prints usage and resolves to 0. */
  run(args: string[]): Promise<number>;
}

export const COMMANDS = {
  serve: {
    summary: "run the tracker server (MCP over Streamable HTTP, or stdio)",
    load: (): Promise<Command> => import("./commands/serve.ts"),
  },
  shell: {
    summary: "open an instrumented demo admin shell",
    load: (): Promise<Command> => import("./commands/shell.ts"),
  },
  list: {
    summary: "list tracked sessions from the store",
    load: (): Promise<Command> => import("./commands/list.ts"),
  },
  show: {
    summary: "show one tracked session",
    load: (): Promise<Command> => import("./commands/show.ts"),
  },
  token: {
    summary: "mint a JWT for a component from the shared secret",
    load: (): Promise<Command> => import("./commands/token.ts"),
  },
  spool: {
    summary: "inspect or drain the local spool of undelivered events",
    load: (): Promise<Command> => import("./commands/spool.ts"),
  },
} as const;

export type CommandName = keyof typeof COMMANDS;

export function mainUsage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    "Usage: shell-sessions <command> [options]",
    "",
    "Track admin shell sessions as OpenTelemetry spans and deliver them to a Session-Buddy-compatible tracker.",
    "",
    "Commands:",
    ...lines,
    "",
    "Run `shell-sessions <command> --help` for a command's options.",
    "Other options: --help, --version",
    "",
  ].join("\n");
}
