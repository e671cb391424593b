/**
 * Random identifiers made before any module that makes them is loaded.
 *
 * A session's ids are written ahead, synchronously, before its prompt is
 * shown. Loading node:crypto costs 7–10 ms there (more than the whole
 * write-ahead); reading the kernel's generator directly costs tens of
 * microseconds and is just as strong. Where /dev/urandom cannot be read
 * (another platform, a sandbox), node:crypto is the fallback.
 */
// Built-ins are taken with process.getBuiltinModule, not imported: an ES module import of a built-in costs
// its facade on the way to the first prompt, which this module is on.
const { closeSync, openSync, readSync } = process.getBuiltinModule("node:fs");

export interface SessionIds {
  /** `session.id` of the shell: a UUID v4. */
  localId: string;
  /** event_id of its start event: a UUID v4. */
  startEventId: string;
  /** 32 hex digits: the correlation id until a span supersedes it. */
  traceId: string;
  /** 16 hex digits. */
  spanId: string;
}

function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  try {
    const fd = openSync("/dev/urandom", "r");
    try {
      let read = 0;
      while (read < n) read += readSync(fd, bytes, read, n - read, null);
      return bytes;
    } finally {
      closeSync(fd);
    }
  } catch {
    process.getBuiltinModule("node:crypto").randomFillSync(bytes);
    return bytes;
  }
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** RFC 9562 version 4: the version nibble is 4, the variant bits are 10. */
function uuidV4(bytes: Uint8Array): string {
  const b = Uint8Array.from(bytes);
  b[6] = ((b[6] as number) & 0x0f) | 0x40;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** An all-zero trace or span id is invalid in W3C trace context; one bit set keeps it valid. */
function nonZero(text: string): string {
  return /^0+$/.test(text) ? `${text.slice(0, -1)}1` : text;
}

export function newSessionIds(): SessionIds {
  const b = randomBytes(56);
  return {
    localId: uuidV4(b.subarray(0, 16)),
    startEventId: uuidV4(b.subarray(16, 32)),
    traceId: nonZero(hex(b.subarray(32, 48))),
    spanId: nonZero(hex(b.subarray(48, 56))),
  };
}

export function newEventId(): string {
  return uuidV4(randomBytes(16));
}
