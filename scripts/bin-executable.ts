/**
 * Run after `tsc` in `npm run build`: the compiler writes every file 0644, so
 * each `bin` in package.json is given its execute bits back. Without them
 * `npx shell-sessions` fails with "Permission denied" after every build (and
 * `npm test` and `npm pack` build). Fails when a bin is missing or has no
 * shebang, as the package would then be published with a broken command.
 */
import { chmodSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const pkg = JSON.parse(readFileSync(resolve(root, "package.json"), "utf8")) as {
  bin?: string | Record<string, string>;
};
const bins = typeof pkg.bin === "string" ? [pkg.bin] : Object.values(pkg.bin ?? {});

for (const bin of bins) {
  const file = resolve(root, bin);
  let head: string;
  try {
    head = readFileSync(file, "utf8").slice(0, 2);
  } catch {
    throw new Error(`bin ${bin} (package.json "bin") was not built: check tsconfig.json's outDir and the source file`);
  }
  if (head !== "#!")
    throw new Error(`bin ${bin} does not start with a #! line: add "#!/usr/bin/env node" to its source`);
  // Execute bits wherever the file is readable: 0644 becomes 0755.
  const mode = statSync(file).mode & 0o777;
  chmodSync(file, mode | ((mode & 0o444) >> 2));
}
