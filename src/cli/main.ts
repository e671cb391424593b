#!/usr/bin/env node
/**
 * `shell-sessions`: one CLI, one subcommand per job. Subcommands are loaded on
 * demand so that `shell-sessions shell` pays only for what a shell needs.
 */
import { checkNodeVersion } from "./node-version.ts";
import { COMMANDS, type CommandName, mainUsage } from "./registry.ts";

async function main(argv: string[]): Promise<number> {
  const versionProblem = checkNodeVersion(process.versions.node);
  if (versionProblem) {
    process.stderr.write(`shell-sessions: ${versionProblem}\n`);
    return 1;
  }
  const [first, ...rest] = argv;
  if (first === undefined || first === "help" || first === "--help" || first === "-h") {
    const topic = first === "help" ? rest[0] : undefined;
    if (topic !== undefined && Object.hasOwn(COMMANDS, topic)) {
      return (await COMMANDS[topic as CommandName].load()).run(["--help"]);
    }
    if (topic !== undefined) {
      process.stderr.write(`shell-sessions: unknown command "${topic}"\n\n${mainUsage()}`);
      return 2;
    }
    // No command at all is a usage error; asking for help is not.
    (first === undefined ? process.stderr : process.stdout).write(mainUsage());
    return first === undefined ? 2 : 0;
  }
  if (first === "--version" || first === "-V") {
    const { version } = await import("../package-info.ts");
    process.stdout.write(`${version}\n`);
    return 0;
  }
  if (!Object.hasOwn(COMMANDS, first)) {
    process.stderr.write(`shell-sessions: unknown command "${first}"\n\n${mainUsage()}`);
    return 2;
  }
  const command = await COMMANDS[first as CommandName].load();
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`shell-sessions: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
