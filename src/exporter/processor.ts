/**
 * The span processor that turns session spans into tracker calls.
 *
 * An exporter alone would only see a session when it ends; the tracker must
 * hear of it when it starts. So this is a SpanProcessor: `onStart` queues the
 * start, `onEnd` queues the end, and both return at once — the sending
 * happens in the background (see delivery.ts). Spans other than
 * `shell.session` are ignored, and so are the spans of shells that the feed
 * (feed.ts) delivers from their write-ahead records: this processor then
 * only serves sessions it learns of from their spans alone.
 */
import { randomUUID } from "node:crypto";
import { type Context, propagation } from "@opentelemetry/api";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace";
import { sanitizeComponentName } from "../contract/index.ts";
import { ATTR_SESSION_ID, SPAN_NAME_SESSION } from "../semconv.ts";
import type { SessionDelivery } from "./delivery.ts";
import { captureHostFacts, componentOf, endPayload, type HostFacts, startPayload } from "./events.ts";
import type { SessionFeed } from "./feed.ts";
import type { SessionRef } from "./jobs.ts";

export class SessionSpanProcessor implements SpanProcessor {
  readonly delivery: SessionDelivery;
  readonly #feed: SessionFeed | undefined;

  constructor(delivery: SessionDelivery, feed?: SessionFeed) {
    this.delivery = delivery;
    this.#feed = feed;
  }

  /** Whether the span's shell is delivered by the feed instead (`forget` once its span ended). */
  #fed(span: ReadableSpan, forget = false): boolean {
    const local = span.attributes[ATTR_SESSION_ID];
    return typeof local === "string" && this.#feed !== undefined && this.#feed.has(local, forget);
  }

  onStart(span: Span, parentContext: Context): void {
    if (span.name !== SPAN_NAME_SESSION || this.#fed(span)) return;
    try {
      const { session, payload } = this.#session(span, captureHostFacts(), propagation.getBaggage(parentContext));
      session.span = span;
      this.delivery.sessionStarted(session, payload);
    } catch {
      // Delivery must never break the shell; the spool and metrics record what it can.
    }
  }

  onEnd(span: ReadableSpan): void {
    if (span.name !== SPAN_NAME_SESSION || this.#fed(span, true)) return;
    try {
      const { traceId, spanId } = span.spanContext();
      const endEventId = randomUUID();
      this.delivery.sessionEnded(
        { traceId, spanId },
        endEventId,
        () => endPayload(span, endEventId),
        // This processor was added after the session started: build its start from the ended span.
        () => this.#session(span, captureHostFacts(), undefined),
      );
    } catch {
      // As above: never into the shell.
    }
  }

  #session(span: ReadableSpan, host: HostFacts, baggage: SessionRef["baggage"]) {
    const { traceId, spanId, traceFlags, traceState } = span.spanContext();
    const startEventId = randomUUID();
    const local = span.attributes[ATTR_SESSION_ID];
    const session: SessionRef = {
      startEventId,
      component: sanitizeComponentName(componentOf(span)),
      localSessionId: typeof local === "string" ? local : undefined,
      traceId,
      spanId,
      traceFlags,
      traceState,
      baggage,
      span: undefined,
      trackerSessionId: undefined,
      start: "memory",
      ended: false,
    };
    const payload = () => {
      const built = startPayload(span, startEventId, host);
      // Attributes set after the span started are read when the start is built, so keep the component in step.
      session.component = built.component_name;
      return built;
    };
    return { session, payload };
  }

  forceFlush(): Promise<void> {
    return this.delivery.forceFlush();
  }

  shutdown(): Promise<void> {
    this.#feed?.stop();
    return this.delivery.shutdown();
  }
}
