/**
 * Feeding delivery from the shells themselves, not from their spans.
 *
 * Tracking is an audit record, not a trace sample: a span that is not
 * sampled never reaches a span processor, and with the SDK disabled there is
 * no span at all. So delivery takes each shell's start and end from the
 * session record the instrumentation writes ahead (src/instrumentation/
 * write-ahead.ts), whatever the sampler or the SDK does; the span only lends
 * its ids (the correlation id) and receives the tracker's session id.
 *
 * A start is handed over once the session's span has started (so it carries
 * the span's trace id), or at once when no span will come (`spans: false`).
 * Each acknowledgement or spooling is noted in the journal, so the drain
 * helper knows what is left once the process is gone. A journal whose events
 * have all been answered for is kept, with its drain helper, for
 * `keepJournalMs` before it is retired: the next shell opened within that
 * time writes to it, rather than paying for a new helper process on its way
 * to the tracker.
 */
import type { Span } from "@opentelemetry/api";
import { sanitizeComponentName } from "../contract/index.ts";
import { registry } from "../instrumentation/registry.ts";
import type { ShellSession } from "../instrumentation/session.ts";
import type { SessionDelivery } from "./delivery.ts";
import { endPayloadOf, startPayloadOf } from "./events.ts";
import type { SessionRef } from "./jobs.ts";

export interface FeedOptions {
  /** Whether session spans will start (false when the SDK is disabled): starts wait for them. */
  spans: boolean;
  /** How long a journal whose events have all been answered for is kept (0: retired at once). */
  keepJournalMs: number;
}

export class SessionFeed {
  readonly #delivery: SessionDelivery;
  readonly #spans: boolean;
  readonly #keepJournalMs: number;
  #retireTimer: NodeJS.Timeout | undefined;
  /** `session.id`s of the shells this feed delivers: their spans are not delivered again by the span processor. */
  readonly #fed = new Set<string>();
  readonly #refs = new WeakMap<ShellSession, SessionRef>();
  readonly #onCapture = (session: ShellSession) => this.#take(session);
  readonly #onEnd = (session: ShellSession) => this.#ended(session);
  #stopped = false;

  constructor(delivery: SessionDelivery, options: FeedOptions) {
    this.#delivery = delivery;
    this.#spans = options.spans;
    this.#keepJournalMs = options.keepJournalMs;
    const reg = registry();
    reg.captureListeners.add(this.#onCapture);
    reg.endListeners.add(this.#onEnd);
    for (const session of [...reg.undelivered]) this.#take(session);
  }

  /**
   * Whether the shell with this `session.id` is delivered by this feed; asked
   * by the span processor, which leaves such spans alone. `forget` once its
   * span has ended.
   */
  has(localSessionId: string, forget = false): boolean {
    const fed = this.#fed.has(localSessionId);
    if (forget) this.#fed.delete(localSessionId);
    return fed;
  }

  stop(): void {
    this.#stopped = true;
    const reg = registry();
    reg.captureListeners.delete(this.#onCapture);
    reg.endListeners.delete(this.#onEnd);
    clearTimeout(this.#retireTimer);
  }

  /** Retires the journal once nothing in it waits, after `keepJournalMs` (it retires only if still done then). */
  #retireLater(journal: NonNullable<ShellSession["journal"]>): void {
    if (!journal.done) return;
    if (this.#keepJournalMs === 0) {
      journal.retire();
      return;
    }
    clearTimeout(this.#retireTimer);
    this.#retireTimer = setTimeout(() => journal.retire(), this.#keepJournalMs).unref();
  }

  #take(session: ShellSession): void {
    const reg = registry();
    // Each shell is delivered by one feed only, whichever took it first.
    if (this.#stopped || !reg.undelivered.delete(session)) return;
    if (session.startLine === undefined) return;
    this.#fed.add(session.id);
    if (!this.#spans || session.observer !== undefined) this.#started(session);
    else void session.bound.then(() => this.#started(session));
  }

  #started(session: ShellSession): void {
    const start = session.startLine;
    if (start === undefined || this.#stopped) return;
    const journal = session.journal;
    const ref: SessionRef = {
      startEventId: start.e,
      component: sanitizeComponentName(start.c),
      localSessionId: session.id,
      traceId: start.tr,
      spanId: start.sp,
      traceFlags: 1,
      traceState: undefined,
      baggage: undefined,
      span: spanOf(session),
      trackerSessionId: undefined,
      start: "memory",
      ended: false,
      settled: (eventId, how, trackerSessionId) => {
        journal?.write(how === "acked" ? { k: "ack", e: eventId, t: trackerSessionId } : { k: "spooled", e: eventId });
        if (how === "acked" && session.ended && journal) this.#retireLater(journal);
      },
    };
    this.#refs.set(session, ref);
    this.#delivery.sessionStarted(ref, () => {
      const payload = startPayloadOf(start);
      ref.component = payload.component_name;
      return payload;
    });
    if (session.ended) this.#ended(session);
  }

  #ended(session: ShellSession): void {
    const ref = this.#refs.get(session);
    const start = session.startLine;
    const end = session.endLine;
    // Not started yet (its span is still to come): #started hands the end over right after the start.
    if (ref === undefined || start === undefined || end === undefined) return;
    this.#refs.delete(session);
    this.#delivery.sessionEnded(
      ref,
      end.e,
      () => endPayloadOf(start, end),
      () => ({ session: ref, payload: () => startPayloadOf(start) }),
    );
  }
}

/** The session's live span, to set the tracker's session id on. */
function spanOf(session: ShellSession): Span | undefined {
  const span = (session.observer as { span?: Span } | undefined)?.span;
  return span?.isRecording() ? span : undefined;
}
