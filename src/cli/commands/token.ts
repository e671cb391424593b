/** `shell-sessions token`: not built yet. */
export const usage = "Usage: shell-sessions token\n\nThis command is not yet available in this version.\n";

export async function run(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(usage);
    return 0;
  }
  process.stderr.write("shell-sessions token: not yet available in this version\n");
  return 1;
}
