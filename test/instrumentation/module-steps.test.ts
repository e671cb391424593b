/**
 * Loading a package one module per turn of the event loop (slices.ts): the
 * plan for made-up graphs (module-steps.ts); the graph of real files as Node
 * resolves it (module-imports.ts); and on real files, planned by the plan
 * process (module-plan.ts), that each module is evaluated in the order a
 * plain import evaluates it, in a turn of its own, a cycle's modules in one
 * turn.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { staticImports } from "../../src/telemetry/module-imports.ts";
import { moduleSteps } from "../../src/telemetry/module-steps.ts";
import { importInSlices, planSteps } from "../../src/telemetry/slices.ts";
import { tempDir } from "../exporter/support.ts";

const BASE = "file:///pkg/";

/** A made-up graph: the files each file imports. */
function graph(files: Record<string, string[]>) {
  const read: string[] = [];
  const readImports = async (url: string) => {
    const name = url.slice(BASE.length);
    read.push(name);
    return (files[name] ?? []).map((file) => `${BASE}${file}`);
  };
  return { readImports, read };
}

const names = (urls: string[]) => urls.map((url) => url.slice(BASE.length));

test("each module comes after the modules it imports, in source order, once", async () => {
  const { readImports } = graph({
    "index.mjs": ["b.mjs", "c.mjs", "other/index.js"],
    "b.mjs": ["d.mjs"],
    "c.mjs": ["d.mjs", "e.cjs"],
    "other/index.js": ["d.mjs"],
  });
  assert.deepEqual(names(await moduleSteps(`${BASE}index.mjs`, readImports)), [
    "d.mjs",
    "b.mjs",
    "e.cjs",
    "c.mjs",
    "other/index.js",
    "index.mjs",
  ]);
});

test("a cycle is one step, at the module through which the walk entered it; what it imports from outside, steps before", async () => {
  const { readImports } = graph({
    "index.mjs": ["a.mjs", "z.mjs"],
    "a.mjs": ["leaf.mjs", "b.mjs"],
    "b.mjs": ["c.mjs"],
    "c.mjs": ["a.mjs", "d.mjs"],
  });
  // a, b and c form the cycle: one step, a, which evaluates all three. leaf and d are outside it, each a step before.
  assert.deepEqual(names(await moduleSteps(`${BASE}index.mjs`, readImports)), [
    "leaf.mjs",
    "d.mjs",
    "a.mjs",
    "z.mjs",
    "index.mjs",
  ]);
});

test("modules already planned are left out; files that are not JavaScript are left to their importer", async () => {
  const { readImports, read } = graph({
    "one.mjs": ["shared.mjs", "data.json"],
    "two.mjs": ["shared.mjs", "own.cjs"],
  });
  const done = new Set<string>();
  assert.deepEqual(names(await moduleSteps(`${BASE}one.mjs`, readImports, done)), ["shared.mjs", "one.mjs"]);
  assert.deepEqual(names(await moduleSteps(`${BASE}two.mjs`, readImports, done)), ["own.cjs", "two.mjs"]);
  assert.deepEqual(await moduleSteps(`${BASE}two.mjs`, readImports, done), []);
  assert.equal(read.filter((file) => file === "shared.mjs").length, 1);
  assert.ok(!read.includes("data.json"));
});

/**
 * A package `pkg` (in `dir`/node_modules) whose modules note, as they are
 * evaluated, their name and the turn of the event loop they ran in.
 * - It imports `dep`, which npm nested under it in another version (an ESM
 *   build behind the "import" condition), beside the top-level `dep` 1.
 * - It imports its own `#util` through its package.json `imports`.
 * - Its cycle's order matters: entered through `cycle-a.mjs` (as the plain
 *   import enters it), `cycle-b.mjs` is evaluated first and `cycle-a.mjs`
 *   can use its class at load time; entered through `cycle-b.mjs`, the class
 *   would not exist yet and loading would throw.
 */
function writePackage(dir: string): string {
  const note = (name: string) => `globalThis.__evaluated.push([${JSON.stringify(name)}, globalThis.__turn]);\n`;
  const write = (path: string, text: string) => {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  };
  const pkg = "node_modules/pkg";
  write(`${pkg}/package.json`, JSON.stringify({ name: "pkg", type: "module", imports: { "#util": "./util.mjs" } }));
  write(
    `${pkg}/index.mjs`,
    `import "#util";\nimport { kind } from "./cycle-a.mjs";\nimport { version } from "dep";\nimport "./last.mjs";\n${note("index")}export const made = kind + version;\n`,
  );
  write(`${pkg}/util.mjs`, `import "./leaf.mjs";\nimport "node:path";\n${note("util")}`);
  write(`${pkg}/leaf.mjs`, note("leaf"));
  write(
    `${pkg}/cycle-a.mjs`,
    `import { B } from "./cycle-b.mjs";\n${note("cycle-a")}export const kind = new B().kind;\n`,
  );
  write(
    `${pkg}/cycle-b.mjs`,
    `import "./cycle-a.mjs";\nimport "./cycle-leaf.mjs";\n${note("cycle-b")}export class B { get kind() { return "b"; } }\n`,
  );
  write(`${pkg}/cycle-leaf.mjs`, note("cycle-leaf"));
  write(`${pkg}/last.mjs`, `import "./leaf.mjs";\n${note("last")}`);
  const nested = `${pkg}/node_modules/dep`;
  write(
    `${nested}/package.json`,
    JSON.stringify({ name: "dep", exports: { ".": { import: "./esm/main.mjs", default: "./main.cjs" } } }),
  );
  write(`${nested}/esm/main.mjs`, `${note("dep 2")}export const version = 2;\n`);
  write(`${nested}/main.cjs`, `${note("dep 2, CommonJS")}exports.version = 2;\n`);
  write("node_modules/dep/package.json", JSON.stringify({ name: "dep", type: "module", exports: "./main.js" }));
  write("node_modules/dep/main.js", `${note("dep 1")}export const version = 1;\n`);
  return pathToFileURL(join(dir, pkg, "index.mjs")).href;
}

test("the files a module imports: relative ones, bare ones as Node resolves them from it (nested versions, conditions, #imports)", async (t) => {
  const root = tempDir(t, "module-imports-");
  const entry = writePackage(root);
  const pkg = new URL(".", entry).href;
  assert.deepEqual(await staticImports(entry), [
    `${pkg}util.mjs`,
    `${pkg}cycle-a.mjs`,
    `${pkg}node_modules/dep/esm/main.mjs`,
    `${pkg}last.mjs`,
  ]);
  // Builtins are left out; a file that is no module has no imports.
  assert.deepEqual(await staticImports(`${pkg}util.mjs`), [`${pkg}leaf.mjs`]);
  assert.deepEqual(await staticImports(`${pkg}package.json`), []);
});

test("on real files: the plain import's order, one module a turn, a cycle in one turn, the entry's exports intact", async (t) => {
  const root = tempDir(t, "module-steps-");
  const plainEntry = writePackage(join(root, "plain"));
  const entry = writePackage(join(root, "sliced"));
  const unplannedEntry = writePackage(join(root, "unplanned"));
  const state = globalThis as typeof globalThis & { __evaluated: [string, number][]; __turn: number };
  let counting = true;
  state.__turn = 0;
  const count = () => {
    state.__turn++;
    if (counting) setImmediate(count);
  };
  setImmediate(count);
  try {
    state.__evaluated = [];
    await import(plainEntry);
    const plain = state.__evaluated;
    state.__evaluated = [];
    const plan = await planSteps([entry]);
    assert.ok((plan?.get(entry)?.length ?? 0) > 1, "planned in steps by module-plan.ts");
    await importInSlices([entry], plan);
    const sliced = state.__evaluated;
    assert.deepEqual(
      sliced.map(([name]) => name),
      plain.map(([name]) => name),
    );
    assert.ok(sliced.some(([name]) => name === "dep 2"));
    // The plain import evaluates everything in one turn.
    assert.equal(new Set(plain.map(([, turn]) => turn)).size, 1);
    // Sliced: leaf, util, cycle-leaf, the cycle (cycle-b, cycle-a) together, dep 2, last, index: seven turns.
    const turnOf = new Map(sliced);
    assert.equal(new Set(sliced.map(([, turn]) => turn)).size, 7, JSON.stringify(sliced));
    assert.equal(turnOf.get("cycle-b"), turnOf.get("cycle-a"));
    assert.ok((turnOf.get("cycle-b") ?? 0) > (turnOf.get("cycle-leaf") ?? 0));
    assert.ok((turnOf.get("util") ?? 0) > (turnOf.get("leaf") ?? 0));
    const module = (await import(entry)) as { made: string };
    assert.equal(module.made, "b2");
    // Without a plan (no process could make one), the package is one step, as a plain import.
    state.__evaluated = [];
    await importInSlices([unplannedEntry]);
    assert.deepEqual(
      state.__evaluated.map(([name]) => name),
      plain.map(([name]) => name),
    );
    assert.equal(new Set(state.__evaluated.map(([, turn]) => turn)).size, 1);
  } finally {
    counting = false;
  }
});

test("the plan's process runs without the program's NODE_OPTIONS, which may --import this package", async (t) => {
  const root = tempDir(t, "module-plan-");
  const entry = writePackage(root);
  const saved = process.env.NODE_OPTIONS;
  // Were it passed on, the plan's process would fail to start, and there would be no plan.
  process.env.NODE_OPTIONS = `--import ${join(root, "missing-preload.mjs")}`;
  try {
    const plan = await planSteps([entry, "no-such-package-anywhere"]);
    assert.ok((plan?.get(entry)?.length ?? 0) > 1, JSON.stringify(plan && [...plan]));
    assert.deepEqual(plan?.get("no-such-package-anywhere"), []);
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
});
