/**
 * Run after `tsc` in `npm run build`: the modules `register` loads before a
 * shell's first prompt become one file.
 *
 * Why: `node --import otel-shell-sessions/register` must stay within 1.25×
 * a bare REPL's time to first prompt, and every ES module on that path costs
 * its resolution, read, compile and link — about half a millisecond each,
 * ~7 ms for the fifteen small modules the source is split into (measured on
 * the 2-core bench machine: +15 ms over bare node split, +7 ms bundled). The
 * source keeps its layout; only dist/ changes:
 *
 * - `dist/prompt-path.js` holds every module statically reachable from
 *   `dist/register.js` (dynamic imports, such as the SDK loaded after the
 *   prompt, stay separate files; paths relative to a module stay correct);
 * - each of those modules' own files becomes a re-export of exactly its
 *   names from the bundle, so code loaded later (the instrumentation, the
 *   public entry points) shares the same module instance and its state.
 *
 * Fails when the bundle would change what a module exports (two modules
 * exporting one name, or a default export), rather than shipping a file
 * that silently lacks a binding.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type BuildOptions, build, type Plugin } from "esbuild";

const root = resolve(import.meta.dirname, "..");
const dist = resolve(root, "dist");
const entry = resolve(dist, "register.js");
const bundle = resolve(dist, "prompt-path.js");

/** `to` as a relative import specifier from a module in `fromDir`. */
function specifier(fromDir: string, to: string): string {
  const path = relative(fromDir, to).split("\\").join("/");
  return path.startsWith(".") ? path : `./${path}`;
}

/**
 * Each module keeps meaning what it meant in its own file: dynamic imports
 * stay outside the bundle, their paths re-aimed from the bundle's directory,
 * and `import.meta.url` still names the module's own file (the drain helper
 * is found relative to it).
 */
const keepLocations: Plugin = {
  name: "keep-locations",
  setup(builder) {
    builder.onResolve({ filter: /^\./ }, (args) => {
      if (args.kind !== "dynamic-import") return undefined;
      return { path: specifier(dirname(bundle), resolve(args.resolveDir, args.path)), external: true };
    });
    builder.onLoad({ filter: /\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8");
      const unsupported = /import\.meta\.(dirname|filename|resolve)/.exec(source);
      if (unsupported !== null)
        throw new Error(
          `${relative(root, args.path)} uses ${unsupported[0]}: use import.meta.url, which the bundle keeps`,
        );
      const own = `new URL(${JSON.stringify(specifier(dirname(bundle), args.path))}, import.meta.url).href`;
      return { contents: source.replaceAll("import.meta.url", own), loader: "js" };
    });
  },
};

const common: BuildOptions = {
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node22",
  packages: "external",
  plugins: [keepLocations],
  logLevel: "warning",
};

// 1. The modules on the way to the prompt: what esbuild includes when bundling register.js.
const graph = await build({ ...common, entryPoints: [entry], write: false, metafile: true });
const modules = Object.keys(graph.metafile?.inputs ?? {})
  .map((input) => resolve(root, input))
  .filter((file) => file !== entry);
if (modules.length === 0) throw new Error("register.js imports nothing: nothing to bundle (was dist/ built?)");

// 2. What each exports, read from the files tsc wrote (before they are replaced).
// A name two modules export is fine when it is one binding re-exported (ES modules merge those); two
// different bindings would make the bundle's `export *` ambiguous, which drops the name silently.
const exported = new Map<string, string[]>();
const owner = new Map<string, { file: string; value: unknown }>();
for (const file of modules) {
  const namespace = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const names = Object.keys(namespace);
  if (names.includes("default"))
    throw new Error(`${relative(root, file)} has a default export, which a re-export from the bundle would drop`);
  for (const name of names) {
    const other = owner.get(name);
    if (other !== undefined && !Object.is(other.value, namespace[name]))
      throw new Error(`${relative(root, file)} and ${other.file} both export "${name}": rename one`);
    owner.set(name, { file: relative(root, file), value: namespace[name] });
  }
  exported.set(file, names);
}

// 3. One file holding them all, exporting the union of their names.
await build({
  ...common,
  stdin: {
    contents: modules.map((file) => `export * from ${JSON.stringify(specifier(dist, file))};`).join("\n"),
    resolveDir: dist,
    sourcefile: "prompt-path-entry.js",
  },
  outfile: bundle,
  sourcemap: true,
});

// 4. Each module's file re-exports its names from the bundle; its source map no longer applies.
for (const file of modules) {
  const names = exported.get(file) ?? [];
  const from = JSON.stringify(specifier(dirname(file), bundle));
  const body = names.length > 0 ? `export { ${names.join(", ")} } from ${from};\n` : `import ${from};\n`;
  writeFileSync(file, `// Bundled into prompt-path.js by scripts/prompt-path-bundle.ts.\n${body}`);
  rmSync(`${file}.map`, { force: true });
}

// 5. The bundle really has every name (a mistake here would otherwise surface only in a user's process).
const bundled = new Set(Object.keys(await import(`${pathToFileURL(bundle).href}?check`)));
for (const [file, names] of exported) {
  const missing = names.filter((name) => !bundled.has(name));
  if (missing.length > 0) throw new Error(`prompt-path.js lacks ${missing.join(", ")} of ${relative(root, file)}`);
}
