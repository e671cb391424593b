/** `shell-sessions serve`: not built yet. */
export const usage = "Usage: shell-sessions serve\n\nThis command is not yet available in this version.\n";

export async function run(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(usage);
    return 0;
  }
  process.stderr.write("shell-sessions serve: not yet available in this version\n");
  return 1;
}
