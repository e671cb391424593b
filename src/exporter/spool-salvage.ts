/**
 * Reads the rows of a damaged spool file straight from its pages, without
 * SQLite: a file whose header, schema page or b-tree interior pages are
 * damaged, or which was cut short, cannot be read row by row through SQL
 * (one bad interior page hides every row below it), but its surviving leaf
 * pages still hold complete rows.
 *
 * The scan takes the latest committed version of every page (the main file,
 * then the frames of the write-ahead log whose salts match its header),
 * leaves out the pages on the freelist, decodes every cell of every table leaf
 * page (following overflow chains) and sorts the records into the spool's
 * tables by their shape. Pages that do not decode are counted and skipped.
 *
 * File format: https://www.sqlite.org/fileformat2.html
 */
import { existsSync, readFileSync } from "node:fs";

export type Value = null | number | string | Uint8Array;

export interface ScannedFile {
  /** Every record of every readable table leaf page, with its rowid. */
  records: { rowid: number; values: Value[] }[];
  pageSize: number;
  pages: number;
  /** Leaf pages whose cell count could not be read, and cells that did not decode. */
  unreadable: { pages: number; cells: number };
}

const HEADER = Buffer.from("SQLite format 3\0", "latin1");
const WAL_MAGIC = [0x377f0682, 0x377f0683];
const PAGE_SIZES = [4096, 1024, 2048, 8192, 16384, 32768, 65536, 512];

/**
 * Reads the records of the database file at `path` (and of its `-wal`),
 * whatever state it is in. With the header gone, every page size is tried
 * and the one whose records `score` highest wins (default: the most
 * records). Counting raw records is not enough to tell the page size: under
 * a size smaller than the real one, the middle of a page full of one long
 * text can decode as hundreds of small bogus records, more than the real
 * ones; so the spool scores by the rows it recognises.
 */
export function scanDatabaseFile(
  path: string,
  score: (records: ScannedFile["records"]) => number = (records) => records.length,
): ScannedFile {
  const file = existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
  const wal = existsSync(`${path}-wal`) ? readFileSync(`${path}-wal`) : Buffer.alloc(0);
  const headerOk = file.length >= 100 && file.subarray(0, 16).equals(HEADER);
  const walPageSize = wal.length >= 32 && WAL_MAGIC.includes(wal.readUInt32BE(0)) ? wal.readUInt32BE(8) : 0;
  const stated = headerOk ? file.readUInt16BE(16) : 0;
  const known = stated === 1 ? 65536 : stated || walPageSize;
  // With the header gone, the page size is the one under which the most rows decode.
  const sizes = PAGE_SIZES.includes(known) ? [known] : PAGE_SIZES;
  let best: { scanned: ScannedFile; score: number } | undefined;
  for (const pageSize of sizes) {
    const scanned = scanWithPageSize(file, wal, pageSize, headerOk ? (file[20] ?? 0) : 0);
    const points = score(scanned.records);
    if (!best || points > best.score) best = { scanned, score: points };
  }
  return (best as { scanned: ScannedFile }).scanned;
}

function scanWithPageSize(file: Buffer, wal: Buffer, pageSize: number, reserved: number): ScannedFile {
  const pages = new Map<number, Buffer>();
  for (let n = 1; (n - 1) * pageSize < file.length; n++) {
    const page = Buffer.alloc(pageSize);
    file.copy(page, 0, (n - 1) * pageSize, n * pageSize);
    pages.set(n, page);
  }
  applyWal(wal, pageSize, pages);
  for (const n of freelistPages(pages)) pages.delete(n);
  const usable = pageSize - reserved;
  const result: ScannedFile = { records: [], pageSize, pages: pages.size, unreadable: { pages: 0, cells: 0 } };
  for (const [n, page] of pages) {
    const at = n === 1 ? 100 : 0;
    if (page[at] !== 0x0d) continue;
    try {
      result.records.push(...leafRecords(page, at, usable, pages, result.unreadable));
    } catch {
      result.unreadable.pages++;
    }
  }
  return result;
}

/** Overlays the committed frames of the write-ahead log on `pages`, in log order. */
function applyWal(wal: Buffer, pageSize: number, pages: Map<number, Buffer>): void {
  if (wal.length < 32 || !WAL_MAGIC.includes(wal.readUInt32BE(0)) || wal.readUInt32BE(8) !== pageSize) return;
  const salt1 = wal.readUInt32BE(16);
  const salt2 = wal.readUInt32BE(20);
  let pending: [number, Buffer][] = [];
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    // A frame from an earlier generation of the log (other salts) is stale: the log ends there.
    if (wal.readUInt32BE(at + 8) !== salt1 || wal.readUInt32BE(at + 12) !== salt2) break;
    pending.push([wal.readUInt32BE(at), Buffer.from(wal.subarray(at + 24, at + 24 + pageSize))]);
    if (wal.readUInt32BE(at + 4) !== 0) {
      for (const [n, page] of pending) pages.set(n, page);
      pending = [];
    }
  }
}

/** The pages on the freelist (they may hold rows deleted long ago); none when the header is unreadable. */
function freelistPages(pages: Map<number, Buffer>): Set<number> {
  const free = new Set<number>();
  const first = pages.get(1);
  if (!first?.subarray(0, 16).equals(HEADER)) return free;
  for (let trunk = first.readUInt32BE(32); trunk !== 0 && !free.has(trunk); ) {
    const page = pages.get(trunk);
    if (!page) break;
    free.add(trunk);
    const count = Math.min(page.readUInt32BE(4), (page.length - 8) / 4);
    for (let i = 0; i < count; i++) free.add(page.readUInt32BE(8 + 4 * i));
    trunk = page.readUInt32BE(0);
  }
  return free;
}

/** The records of one table leaf page; a cell that does not decode is counted in `bad` and skipped. */
function leafRecords(
  page: Buffer,
  at: number,
  usable: number,
  pages: Map<number, Buffer>,
  bad: { cells: number },
): { rowid: number; values: Value[] }[] {
  const out: { rowid: number; values: Value[] }[] = [];
  const cells = page.readUInt16BE(at + 3);
  for (let i = 0; i < cells; i++) {
    try {
      const [size, afterSize] = varint(page, page.readUInt16BE(at + 8 + 2 * i));
      const [rowid, afterRowid] = varint(page, afterSize);
      const values = decodeRecord(cellPayload(page, afterRowid, size, usable, pages));
      if (values) out.push({ rowid, values });
      else bad.cells++;
    } catch {
      bad.cells++;
    }
  }
  return out;
}

/** A table leaf cell's payload, with the part that spilled to overflow pages. */
function cellPayload(page: Buffer, at: number, size: number, usable: number, pages: Map<number, Buffer>): Buffer {
  const maxLocal = usable - 35;
  if (size <= maxLocal) return page.subarray(at, at + size);
  const minLocal = Math.floor(((usable - 12) * 32) / 255) - 23;
  let local = minLocal + ((size - minLocal) % (usable - 4));
  if (local > maxLocal) local = minLocal;
  const parts = [page.subarray(at, at + local)];
  let have = local;
  let next = page.readUInt32BE(at + local);
  const seen = new Set<number>();
  while (have < size) {
    const overflow = pages.get(next);
    if (!overflow || seen.has(next)) throw new Error("broken overflow chain");
    seen.add(next);
    const take = Math.min(size - have, usable - 4);
    parts.push(overflow.subarray(4, 4 + take));
    have += take;
    next = overflow.readUInt32BE(0);
  }
  return Buffer.concat(parts);
}

/** A record's values, or undefined when the bytes are not a well-formed record. */
function decodeRecord(payload: Buffer): Value[] | undefined {
  const [headerSize, first] = varint(payload, 0);
  if (headerSize > payload.length) return undefined;
  const types: number[] = [];
  for (let p = first; p < headerSize; ) {
    const [type, next] = varint(payload, p);
    types.push(Number(type));
    p = next;
  }
  const values: Value[] = [];
  let p = Number(headerSize);
  for (const type of types) {
    const [value, length] = decodeValue(payload, p, type);
    if (p + length > payload.length) return undefined;
    values.push(value);
    p += length;
  }
  return values;
}

const INT_SIZES = [0, 1, 2, 3, 4, 6, 8];

function decodeValue(buf: Buffer, at: number, type: number): [Value, number] {
  if (type === 0) return [null, 0];
  if (type >= 1 && type <= 6) {
    const size = INT_SIZES[type] as number;
    if (at + size > buf.length) throw new RangeError("record value past its end");
    return [size === 8 ? Number(buf.readBigInt64BE(at)) : buf.readIntBE(at, size), size];
  }
  if (type === 7) return [buf.readDoubleBE(at), 8];
  if (type === 8 || type === 9) return [type - 8, 0];
  if (type >= 12 && type % 2 === 0) return [new Uint8Array(buf.subarray(at, at + (type - 12) / 2)), (type - 12) / 2];
  if (type >= 13) return [buf.toString("utf8", at, at + (type - 13) / 2), (type - 13) / 2];
  throw new RangeError(`reserved serial type ${type}`);
}

/** SQLite's big-endian varint: 1 to 9 bytes; returns the value and the offset after it. */
function varint(buf: Buffer, at: number): [number, number] {
  let value = 0n;
  for (let i = 0; i < 9; i++) {
    const byte = buf[at + i];
    if (byte === undefined) throw new RangeError("varint past the end");
    if (i === 8) return [Number((value << 8n) | BigInt(byte)), at + 9];
    value = (value << 7n) | BigInt(byte & 0x7f);
    if (byte < 0x80) return [Number(value), at + i + 1];
  }
  throw new RangeError("unreachable");
}

// ---- the spool's tables, told apart by the shape of their records ----

export interface SalvagedRows {
  /** Rows of `events`, the rowid (seq) first: the record stores NULL for an INTEGER PRIMARY KEY. */
  events: Value[][];
  sessions: Value[][];
  quarantine: Value[][];
  delivered: Value[][];
  salvages: Value[][];
  counters: Map<string, number>;
}

/** Names in `counters`; a two-column row with another name is a `delivered` tombstone (or sqlite_sequence). */
export const COUNTER_NAMES = new Set(["lost", "waiting", "salvaged"]);
const SEQUENCE_NAMES = new Set(["events", "quarantine"]);

const isText = (v: Value | undefined): v is string => typeof v === "string";
const isInt = (v: Value | undefined): v is number => typeof v === "number";
const isTextOrNull = (v: Value | undefined) => v === null || isText(v);

/** Sorts scanned records into the spool's tables; records of other shapes (schema, leases, indexes) are left out. */
export function sortSpoolRecords(records: ScannedFile["records"]): SalvagedRows {
  const rows: SalvagedRows = {
    events: [],
    sessions: [],
    quarantine: [],
    delivered: [],
    salvages: [],
    counters: new Map(),
  };
  for (const { rowid, values: v } of records) {
    if (v.length === 17 && isEventRow(v)) rows.events.push([rowid, ...v.slice(1)]);
    else if (v.length === 3 && isText(v[0]) && isText(v[1]) && isInt(v[2]) && v[0] !== "drain") rows.sessions.push(v);
    else if (v.length === 7 && isText(v[5]) && isInt(v[6])) rows.quarantine.push(v);
    else if (v.length === 5 && isInt(v[0]) && isText(v[1]) && isInt(v[2]) && isText(v[4])) rows.salvages.push(v);
    else if (v.length === 2 && isText(v[0]) && isInt(v[1])) {
      if (COUNTER_NAMES.has(v[0])) rows.counters.set(v[0], v[1]);
      else if (!SEQUENCE_NAMES.has(v[0])) rows.delivered.push(v);
    }
  }
  return rows;
}

/** How many rows of the spool's tables `records` hold: what a page size is judged by when salvaging. */
export function spoolRowCount(records: ScannedFile["records"]): number {
  const rows = sortSpoolRecords(records);
  return (
    rows.events.length +
    rows.sessions.length +
    rows.quarantine.length +
    rows.delivered.length +
    rows.salvages.length +
    rows.counters.size
  );
}

function isEventRow(v: Value[]): boolean {
  return (
    v[0] === null &&
    [1, 2, 3, 5, 9, 11].every((i) => isText(v[i])) &&
    [4, 6, 7, 8, 13].every((i) => isTextOrNull(v[i])) &&
    [10, 12, 14, 16].every((i) => isInt(v[i])) &&
    (v[15] === null || isInt(v[15]))
  );
}
