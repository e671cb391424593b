/**
 * What a module imports statically, as the files Node would load for it: the
 * graph module-steps.ts walks.
 *
 * A bare specifier is resolved from the importing file, as Node resolves it:
 * where npm nests another version of a package under the one that imports
 * it (an SDK package pinning `@opentelemetry/core` 3.1.0 beside our 3.1.1),
 * that nested copy is the one loaded, and the one to load in steps. The
 * package is found with Node's own `findPackageJSON`; its `exports` (or
 * `imports`, for `#` specifiers) are read with resolve.exports under the
 * conditions of Node's ESM loader. By hand otherwise because Node resolves
 * a specifier from another module's location only behind a flag
 * (`import.meta.resolve` with a parent).
 *
 * Anything unexpected leaves the import out of the walk rather than failing
 * it: the module that imports it then loads it, as a plain import would.
 */
import { readFile } from "node:fs/promises";
import { findPackageJSON, isBuiltin } from "node:module";
import { pathToFileURL } from "node:url";
import { init, parse } from "es-module-lexer";
import { legacy, type Package, exports as resolveExports, imports as resolveImports } from "resolve.exports";

/** Beside "node", "import" and "default", which resolve.exports adds for an import. */
const CONDITIONS = ["module-sync", "node-addons"];

const packages = new Map<string, Promise<Package | undefined>>();

function packageJson(path: string): Promise<Package | undefined> {
  let read = packages.get(path);
  if (read === undefined) {
    read = readFile(path, "utf8").then(
      (text) => JSON.parse(text) as Package,
      () => undefined,
    );
    packages.set(path, read);
  }
  return read;
}

/** The file a bare (or `#`) specifier leads to from `parent`, or undefined. */
export async function resolveBare(specifier: string, parent: string): Promise<string | undefined> {
  if (isBuiltin(specifier)) return undefined;
  const own = specifier.startsWith("#");
  const path = findPackageJSON(own ? parent : specifier, parent);
  if (path === undefined) return undefined;
  const pkg = await packageJson(path);
  if (pkg === undefined) return undefined;
  let target: string | undefined;
  if (own) {
    target = resolveImports(pkg, specifier, { conditions: CONDITIONS })?.[0];
  } else if (pkg.exports !== undefined) {
    if (typeof pkg.name !== "string" || (specifier !== pkg.name && !specifier.startsWith(`${pkg.name}/`)))
      return undefined;
    target = resolveExports(pkg, `.${specifier.slice(pkg.name.length)}`, { conditions: CONDITIONS })?.[0];
  } else if (specifier === pkg.name) {
    target = legacy(pkg, { browser: false, fields: ["main"] }) ?? "index.js";
  }
  // A target that names another package (allowed in `imports`) is left to the importing module.
  if (target === undefined || !/^\.\.?\//.test(target)) return undefined;
  return new URL(target, pathToFileURL(path)).href;
}

/**
 * The files `url` imports statically, in source order: relative specifiers
 * against it, bare ones as Node would resolve them from it. Builtins, dynamic
 * imports and what cannot be resolved are left out; a file that cannot be
 * read as a module (CommonJS has no imports it can see) has none.
 */
export async function staticImports(url: string): Promise<string[]> {
  let specifiers: string[];
  try {
    await init;
    const [imports] = parse(await readFile(new URL(url), "utf8"));
    specifiers = imports.flatMap((i) => (i.type === "static" && i.specifier !== undefined ? [i.specifier] : []));
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const specifier of specifiers) {
    try {
      const file = /^\.\.?\//.test(specifier) ? new URL(specifier, url).href : await resolveBare(specifier, url);
      if (file !== undefined) files.push(file);
    } catch {
      // Left out: see the comment at the top.
    }
  }
  return files;
}
