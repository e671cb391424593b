/**
 * Argument handling shared by every subcommand, so that `--help`, unknown
 * options and misuse behave the same everywhere: help goes to stdout with
 * exit 0, misuse names the problem and shows the usage on stderr with exit 2.
 */
import { type ParseArgsOptionsConfig, parseArgs } from "node:util";

export interface CommandSpec<O extends ParseArgsOptionsConfig> {
  /** As typed after `shell-sessions`, e.g. `list` or `spool drain`. */
  name: string;
  usage: string;
  options: O;
  allowPositionals?: boolean;
}

const HELP = { help: { type: "boolean", short: "h" } } as const;

type Config<O extends ParseArgsOptionsConfig> = {
  args: string[];
  options: O & typeof HELP;
  allowPositionals: boolean;
  strict: true;
};
export type ParsedArgs<O extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<Config<O>>>;

/** Prints `message` and the usage to stderr; returns the exit code for misuse. */
export function usageError(spec: { name: string; usage: string }, message: string): number {
  process.stderr.write(`shell-sessions ${spec.name}: ${message}\n\n${spec.usage}`);
  return 2;
}

/**
 * The parsed options and positionals, or, when the command is already done
 * (`--help`) or misused, the exit code to return.
 */
export function parseCommandArgs<O extends ParseArgsOptionsConfig>(
  spec: CommandSpec<O>,
  args: string[],
): ParsedArgs<O> | number {
  let parsed: ParsedArgs<O>;
  try {
    parsed = parseArgs<Config<O>>({
      args,
      options: { ...spec.options, ...HELP },
      allowPositionals: spec.allowPositionals ?? false,
      strict: true,
    });
  } catch (error) {
    return usageError(spec, error instanceof Error ? error.message : String(error));
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(spec.usage);
    return 0;
  }
  return parsed;
}
