/**
 * A package's module graph as steps that can be imported one at a time.
 *
 * Importing a package's entry links and evaluates all of its modules (and
 * the packages they import that are not loaded yet) in one
 * synchronous run: `@opentelemetry/core` (32 files), zod's core or the MCP
 * client held the event loop 45 to 80 ms each just after the first prompt.
 * Importing the modules one by one, each after the modules it imports, gives
 * the loop back between them; the import of the entry that follows finds
 * them evaluated. The order is the one a plain import would evaluate them in
 * (depth first, each module after its imports, in source order), so nothing
 * a module does at load time sees a different world.
 *
 * A cycle is the exception: a plain import evaluates a cycle's modules
 * together, in an order that depends on where it entered the cycle, so the
 * module through which the walk first entered it is one step with the rest
 * of the cycle.
 * Only JavaScript files are steps; a file whose imports cannot be seen (a
 * CommonJS module, whose `require` tree loads at once) is one step with
 * whatever it loads.
 *
 * By hand because no library plans this; module-imports.ts reads the graph.
 */

/** The files a module imports statically, as URLs in source order (module-imports.ts). */
export type ReadImports = (url: string) => Promise<readonly string[]>;

const JAVASCRIPT = /\.[cm]?js$/;

/**
 * The modules under `entry` (a file URL) in the order to import them, one
 * per step, ending with `entry`'s. Modules in `done` (imported by earlier
 * steps) are left out, and those planned here are added to it.
 *
 * The walk is the one a module's evaluation does (Tarjan's strongly
 * connected components, as the ECMAScript spec's InnerModuleEvaluation):
 * each component is evaluated when the walk leaves its first module, so a
 * step per component, naming that first module, evaluates each module
 * exactly when a plain import would.
 */
export async function moduleSteps(
  entry: string,
  readImports: ReadImports,
  done = new Set<string>(),
): Promise<string[]> {
  const steps: string[] = [];
  /** The order in which the walk reached each module, and the earliest module still on the stack each reaches. */
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  /** Modules reached whose component is not complete yet. */
  const stack: string[] = [];
  const onStack = new Set<string>();

  const visit = async (url: string): Promise<void> => {
    const mine = index.size;
    index.set(url, mine);
    low.set(url, mine);
    stack.push(url);
    onStack.add(url);
    for (const dependency of await readImports(url)) {
      // JSON and the like need import attributes: left to the module that imports them.
      if (!JAVASCRIPT.test(new URL(dependency).pathname) || done.has(dependency)) continue;
      if (!index.has(dependency)) {
        await visit(dependency);
        low.set(url, Math.min(low.get(url) ?? mine, low.get(dependency) ?? mine));
      } else if (onStack.has(dependency)) {
        low.set(url, Math.min(low.get(url) ?? mine, index.get(dependency) ?? mine));
      }
    }
    if (low.get(url) !== mine) return;
    // The first module of a component: importing it evaluates the whole component.
    let member: string | undefined;
    do {
      member = stack.pop();
      if (member !== undefined) {
        onStack.delete(member);
        done.add(member);
      }
    } while (member !== undefined && member !== url);
    steps.push(url);
  };

  if (!done.has(entry)) await visit(entry);
  return steps;
}
