import type { REPLServer } from "node:repl";
import {
  InstrumentationBase,
  type InstrumentationModuleDefinition,
  InstrumentationNodeModuleDefinition,
} from "@opentelemetry/instrumentation";
import type { SpanProcessor } from "@opentelemetry/sdk-trace";
import { version as PACKAGE_VERSION } from "../package-info.ts";
import { CAPTURE_METHOD, captureServer, removeCapture } from "./capture.ts";
import { createSessionMetrics, type SessionMetrics } from "./metrics.ts";
import { registry, type SessionBinder } from "./registry.ts";
import { SCOPE_NAME } from "./semconv.ts";
import type { ShellSession } from "./session.ts";
import { SessionSpan } from "./session-span.ts";
import type { ShellSessionInstrumentationConfig } from "./types.ts";

type ReplExports = { REPLServer?: { prototype: Record<string, unknown> } };
type PromptFn = (this: REPLServer, ...args: unknown[]) => unknown;

/** Our patched functions, to keep patching idempotent without unwrapping anyone else's wrapper. */
const OUR_WRAPPERS = new WeakSet<object>();
/**
 * The module definition of each instance. It is created in `init()`, which
 * the base constructor calls before this class's fields exist, so it cannot
 * be a field.
 */
const DEFINITIONS = new WeakMap<object, InstrumentationModuleDefinition>();

export class ShellSessionInstrumentation
  extends InstrumentationBase<ShellSessionInstrumentationConfig>
  implements SessionBinder
{
  // Assigned from the base constructor (via _updateMetricInstruments): declared, not initialised, so it is not reset afterwards.
  declare private _sessionMetrics: SessionMetrics;
  private _forward: SpanProcessor[] = [];

  constructor(config: ShellSessionInstrumentationConfig = {}) {
    super(SCOPE_NAME, PACKAGE_VERSION, config);
  }

  protected init(): InstrumentationModuleDefinition[] {
    const definition = new InstrumentationNodeModuleDefinition(
      "repl",
      ["*"],
      (moduleExports: ReplExports) => this._patchRepl(moduleExports),
      (moduleExports: ReplExports) => this._unpatchRepl(moduleExports),
    );
    DEFINITIONS.set(this, definition);
    return [definition];
  }

  override enable(): void {
    if (this._enabled) return;
    super.enable();
    const definition = DEFINITIONS.get(this);
    const replExports = process.getBuiltinModule("node:repl") as unknown as ReplExports;
    if (definition !== undefined && definition.moduleExports === undefined) definition.moduleExports = replExports;
    this._patchRepl(replExports);
    registry().binder = this;
    // After the constructor (which may be what called enable()) has finished.
    queueMicrotask(() => this._adoptPending());
  }

  override disable(): void {
    if (!this._enabled) return;
    const reg = registry();
    if (reg.binder === this) reg.binder = undefined;
    super.disable();
  }

  protected override _updateMetricInstruments(): void {
    this._sessionMetrics = createSessionMetrics(this.meter);
  }

  /**
   * Span processors that must see session spans although they are not part
   * of the tracer provider (when the provider belongs to another SDK that
   * cannot be extended). They get `onStart`/`onEnd` for `shell.session` spans.
   */
  setSessionSpanProcessors(processors: readonly SpanProcessor[]): void {
    this._forward = [...processors];
  }

  /** Starts the span of a recorded session (with its recorded start time). */
  bind(session: ShellSession): void {
    if (session.observer !== undefined || !this._enabled) return;
    try {
      session.attach(
        new SessionSpan(session, {
          tracer: this.tracer,
          metrics: this._sessionMetrics,
          config: this.getConfig(),
          forward: this._forward,
          diag: this._diag,
          env: process.env,
        }),
      );
    } catch (error) {
      this._diag.error("could not start a shell session span", error instanceof Error ? error.message : typeof error);
    }
  }

  private _adoptPending(): void {
    if (!this._enabled || registry().binder !== this) return;
    for (const session of [...registry().live]) this.bind(session);
  }

  private _patchRepl(moduleExports: ReplExports): ReplExports {
    const proto = moduleExports?.REPLServer?.prototype;
    if (proto === undefined || typeof proto[CAPTURE_METHOD] !== "function") return moduleExports;
    if (OUR_WRAPPERS.has(proto[CAPTURE_METHOD] as object)) return moduleExports;
    removeCapture();
    const wrapped = this._wrap(proto, CAPTURE_METHOD, (original) => {
      const prompt = original as PromptFn;
      return function patchedDisplayPrompt(this: REPLServer, ...args: unknown[]) {
        // Any enabled instance may be the binder: the patch is shared by all of them.
        if (registry().binder !== undefined) captureServer(this);
        return prompt.apply(this, args);
      };
    });
    const current = proto[CAPTURE_METHOD];
    if (typeof current === "function") OUR_WRAPPERS.add(current);
    if (wrapped) OUR_WRAPPERS.add(wrapped);
    return moduleExports;
  }

  private _unpatchRepl(moduleExports: ReplExports): void {
    const proto = moduleExports?.REPLServer?.prototype;
    // Kept while another instance is still the binder.
    if (registry().binder !== undefined) return;
    if (proto !== undefined && OUR_WRAPPERS.has(proto[CAPTURE_METHOD] as object)) this._unwrap(proto, CAPTURE_METHOD);
  }
}
