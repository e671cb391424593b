/**
 * The warm-up's plan (slices.ts), made in a process of its own:
 *
 *   node module-plan.js BASE SPECIFIER...
 *
 * prints a JSON array holding, for each specifier in turn (a file URL, or a
 * package name resolved from the module at BASE as an import there would
 * be), the modules to import one per step (module-steps.ts) over the graph
 * module-imports.ts reads, ending with the specifier's own module; a module
 * planned for an earlier one is not planned again. A specifier that does
 * not resolve has no steps.
 *
 * A process rather than the program itself because reading the graph
 * leaves memory behind: es-module-lexer's WebAssembly memory (16 MiB from
 * the first file it reads) is never given back, and kept the instrumented
 * program 8 to 11 MiB larger for good (resident, after a full collection),
 * for a plan used once. Here it goes when the process exits. The process is
 * started by slices.ts.
 */
import { resolveBare, staticImports } from "./module-imports.ts";
import { moduleSteps } from "./module-steps.ts";

const [base = "", ...specifiers] = process.argv.slice(2);
const done = new Set<string>();
const plans: string[][] = [];
for (const specifier of specifiers) {
  try {
    const root = specifier.startsWith("file:") ? specifier : await resolveBare(specifier, base);
    plans.push(root === undefined ? [] : await moduleSteps(root, staticImports, done));
  } catch {
    plans.push([]);
  }
}
process.stdout.write(JSON.stringify(plans));
