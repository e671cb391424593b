/**
 * Argument handling shared by every subcommand, so that `--help`, unknown
 * options and misuse behave the same everywhere: help goes to stdout with
 * exit 0, misuse names the problem in plain words and shows the usage on
 * stderr with exit 2. A flag that means the same in every subcommand
 * (`--store`) is checked here too, before the command starts anything.
 */
import type { ParseArgsOptionsConfig } from "node:util";
import { parseStoreSpec } from "../store/spec.ts";

// node:util through its CommonJS exports (its ES module facade costs more), so
// that `shell`, which opens as fast as a bare REPL, can parse with this too.
const { parseArgs } = process.getBuiltinModule("node:util");

export interface CommandSpec<O extends ParseArgsOptionsConfig> {
  /** As typed after `shell-sessions`, e.g. `list` or `spool drain`. */
  name: string;
  usage: string;
  options: O;
  allowPositionals?: boolean;
  /** Accept `--no-FLAG` for boolean flags. */
  allowNegative?: boolean;
}

const HELP = { help: { type: "boolean", short: "h" } } as const;

type Config<O extends ParseArgsOptionsConfig> = {
  args: string[];
  options: O & typeof HELP;
  allowPositionals: boolean;
  allowNegative: boolean;
  strict: true;
};
export type ParsedArgs<O extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<Config<O>>>;

/** Checks of flags that every subcommand declaring them shares; each throws an Error naming the flag. */
const SHARED_CHECKS: Record<string, (value: string) => void> = {
  store: (value) => void parseStoreSpec(value),
};

const NEGATIVE_NUMBER = /^-\.?\d/;

/** Prints `message` and the usage to stderr; returns the exit code for misuse. */
export function usageError(spec: { name: string; usage: string }, message: string): number {
  process.stderr.write(`shell-sessions ${spec.name}: ${message}\n\n${spec.usage}`);
  return 2;
}

/** The long name of the string-valued option `token` spells (`--lease`, `-l`), if it is one. */
function stringOption(token: string, options: ParseArgsOptionsConfig): string | undefined {
  const long = /^--([^=]+)$/.exec(token)?.[1];
  const name = long ?? Object.keys(options).find((key) => token.length === 2 && `-${options[key]?.short}` === token);
  return name !== undefined && Object.hasOwn(options, name) && options[name]?.type === "string" ? name : undefined;
}

/**
 * `--lease -1` becomes `--lease=-1`, so the command's own check says which
 * values it takes, where the parser would call a negative number ambiguous.
 * Any other value that begins with "-" is refused with how to write it.
 */
function attachDashValues(args: string[], options: ParseArgsOptionsConfig): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const next = args[i + 1];
    if (arg === "--") return [...out, ...args.slice(i)];
    const name = stringOption(arg, options);
    if (name !== undefined && next?.startsWith("-") && next !== "-") {
      if (!NEGATIVE_NUMBER.test(next)) {
        throw new Error(
          `--${name} needs a value, not the option ${next} (a value that begins with "-" is written --${name}=-VALUE)`,
        );
      }
      out.push(`--${name}=${next}`);
      i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}

/** The parser's own wording, made plain where it names internals ("<value>", "argument"). */
function plainParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const option = /'(?:-\w, )?(--[^' ]+)(?: <value>)?'/.exec(message)?.[1];
  if (option !== undefined && /argument missing/.test(message)) return `${option} needs a value`;
  if (option !== undefined && /does not take an argument/.test(message)) return `${option} takes no value`;
  return message;
}

function parse<O extends ParseArgsOptionsConfig>(spec: CommandSpec<O>, args: string[]): ParsedArgs<O> {
  const options = { ...spec.options, ...HELP };
  let parsed: ParsedArgs<O>;
  try {
    parsed = parseArgs<Config<O>>({
      args: attachDashValues(args, options),
      options,
      allowPositionals: spec.allowPositionals ?? false,
      allowNegative: spec.allowNegative ?? false,
      strict: true,
    });
  } catch (error) {
    throw new Error(plainParseError(error));
  }
  const values = parsed.values as Record<string, unknown>;
  for (const [name, check] of Object.entries(SHARED_CHECKS)) {
    const value = values[name];
    if (Object.hasOwn(spec.options, name) && typeof value === "string") check(value);
  }
  return parsed;
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
    parsed = parse(spec, args);
  } catch (error) {
    return usageError(spec, error instanceof Error ? error.message : String(error));
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(spec.usage);
    return 0;
  }
  return parsed;
}
