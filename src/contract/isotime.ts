/**
 * Event timestamps, accepted exactly as Session-Buddy accepts them: the
 * string contains a `T` and CPython 3.11's `datetime.fromisoformat` parses
 * it. That is wider than RFC 3339: minutes-only times (`12:34Z`), offsets
 * without a colon (`+0000`) or with seconds, the basic format
 * (`20260206T123456Z`), ISO week dates (`2026-W06-5T12:00`), and a comma
 * before the fraction.
 *
 * This follows the C implementation (Modules/_datetimemodule.c in 3.11),
 * which is what Session-Buddy runs, step by step, including its quirks, so
 * that nothing it accepts is refused here. `fromisoformat` then builds a
 * datetime, which checks the ranges: those checks are at the end.
 *
 * Two deliberate differences, both refusals of values no clock produces:
 * characters outside printable ASCII are refused up front (CPython would
 * stop at an embedded NUL), and an instant outside years 0001–9999 in UTC is
 * refused (the stores hold only those).
 */

export type TimestampCheck = { ok: true; date: Date } | { ok: false; why: string };

const NOT_ISO = "is not an ISO 8601 time that Python's datetime.fromisoformat reads";

/** CPython reads past the end of a component as its terminating NUL. */
function at(s: string, i: number): string {
  return i < s.length ? (s[i] as string) : "\0";
}

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

/** Exactly `n` ASCII digits at `pos`, or undefined. */
function digits(s: string, pos: number, n: number): number | undefined {
  let value = 0;
  for (let i = 0; i < n; i++) {
    const c = at(s, pos + i);
    if (!isDigit(c)) return undefined;
    value = value * 10 + (c.charCodeAt(0) - 48);
  }
  return value;
}

/** `_find_isoformat_datetime_separator`: where the date ends. -1 when it cannot tell. */
function separatorAt(s: string): number {
  const len = s.length;
  if (len === 7) return 7;
  if (s[4] === "-") {
    if (s[5] !== "W") return 10;
    if (len < 8) return -1;
    if (len > 8 && s[8] === "-") {
      if (len === 9) return -1;
      return len > 10 && isDigit(at(s, 10)) ? 8 : 10;
    }
    return 8;
  }
  if (s[4] !== "W") return 8;
  let idx = 7;
  while (idx < len && isDigit(at(s, idx))) idx++;
  if (idx < 9) return idx;
  return idx % 2 === 0 ? 7 : 8;
}

interface Ymd {
  year: number;
  month: number;
  day: number;
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function utcDate(year: number, month: number, day: number): Date {
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  date.setUTCFullYear(year, month - 1, day);
  return date;
}

/** `iso_to_ymd`: an ISO week date as a calendar date, or undefined when the week or day does not exist. */
function isoWeekToYmd(isoYear: number, week: number, weekday: number): Ymd | undefined {
  if (week <= 0 || week >= 53) {
    const firstWeekday = (utcDate(isoYear, 1, 1).getUTCDay() + 6) % 7;
    const has53 = firstWeekday === 3 || (firstWeekday === 2 && isLeap(isoYear));
    if (!(week === 53 && has53)) return undefined;
  }
  if (weekday <= 0 || weekday >= 8) return undefined;
  const jan4 = utcDate(isoYear, 1, 4);
  const week1Monday = jan4.getTime() - ((jan4.getUTCDay() + 6) % 7) * 86_400_000;
  const date = new Date(week1Monday + ((week - 1) * 7 + weekday - 1) * 86_400_000);
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
}

/** `parse_isoformat_date` on `s[0, len)`. */
function parseDate(s: string, len: number): Ymd | undefined {
  const year = digits(s, 0, 4);
  if (year === undefined) return undefined;
  let p = 4;
  const dashed = s[p] === "-";
  if (dashed) p++;
  if (s[p] === "W") {
    const week = digits(s, p + 1, 2);
    if (week === undefined) return undefined;
    p += 3;
    let weekday = 1;
    if (p < len) {
      if (dashed && s[p++] !== "-") return undefined;
      const d = digits(s, p, 1);
      if (d === undefined) return undefined;
      weekday = d;
    }
    return isoWeekToYmd(year, week, weekday);
  }
  const month = digits(s, p, 2);
  if (month === undefined) return undefined;
  p += 2;
  if (dashed && s[p++] !== "-") return undefined;
  const day = digits(s, p, 2);
  return day === undefined ? undefined : { year, month, day };
}

interface Clock {
  /** <0: malformed; 0: the text ended; 1: more text follows (`parse_hh_mm_ss_ff`'s return). */
  rv: number;
  hms: [number, number, number];
  micros: number;
}

const FRACTION_CORRECTION = [100_000, 10_000, 1_000, 100, 10];

/** `parse_hh_mm_ss_ff` on `s[start, end)`: HH[:?MM[:?SS]][{.,}f…]. */
function parseClock(s: string, start: number, end: number): Clock {
  const hms: [number, number, number] = [0, 0, 0];
  let p = start;
  let separated = true;
  for (let i = 0; i < 3; i++) {
    const value = digits(s, p, 2);
    if (value === undefined) return { rv: -3, hms, micros: 0 };
    hms[i] = value;
    p += 2;
    const c = at(s, p++);
    if (i === 0) separated = c === ":";
    if (p >= end) return { rv: c !== "\0" ? 1 : 0, hms, micros: 0 };
    if (separated && c === ":") continue;
    if (c === "." || c === ",") break;
    if (!separated) p--;
    else return { rv: -4, hms, micros: 0 };
  }
  const toParse = Math.min(6, end - p);
  let micros = digits(s, p, toParse);
  if (micros === undefined) return { rv: -3, hms, micros: 0 };
  p += toParse;
  if (toParse > 0 && toParse < 6) micros *= FRACTION_CORRECTION[toParse - 1] as number;
  while (isDigit(at(s, p))) p++;
  return { rv: at(s, p) !== "\0" ? 1 : 0, hms, micros };
}

interface Time {
  hms: [number, number, number];
  micros: number;
  /** Offset east of UTC in microseconds; 0 without a zone (the contract reads that as UTC). */
  offsetMicros: number;
}

/** `parse_isoformat_time` on `s[start, len)`. */
function parseTime(s: string, start: number): Time | undefined {
  const end = s.length;
  let tz = start;
  do {
    const c = at(s, tz);
    if (c === "Z" || c === "+" || c === "-") break;
  } while (++tz < end);
  const clock = parseClock(s, start, tz);
  if (clock.rv < 0) return undefined;
  const time = { hms: clock.hms, micros: clock.micros, offsetMicros: 0 };
  if (tz === end) return clock.rv === 1 ? undefined : time;
  if (s[tz] === "Z") return at(s, tz + 1) !== "\0" ? undefined : time;
  const sign = s[tz] === "-" ? -1 : 1;
  const offset = parseClock(s, tz + 1, end);
  if (offset.rv !== 0) return undefined;
  const [h, m, sec] = offset.hms;
  // CPython takes a zero offset in whole seconds as UTC, whatever its fraction.
  const seconds = h * 3600 + m * 60 + sec;
  time.offsetMicros = seconds === 0 ? 0 : sign * (seconds * 1_000_000 + offset.micros);
  return time;
}

function daysInMonth(year: number, month: number): number {
  return month === 2 ? (isLeap(year) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** The ranges `datetime(...)` and `timezone(...)` enforce. */
function rangeProblem(date: Ymd, time: Time): string | undefined {
  if (date.year < 1) return "is not a calendar date";
  if (date.month < 1 || date.month > 12 || date.day < 1 || date.day > daysInMonth(date.year, date.month)) {
    return "is not a calendar date";
  }
  const [h, m, sec] = time.hms;
  if (h > 23 || m > 59 || sec > 59) return "is not a time of day";
  if (Math.abs(time.offsetMicros) >= 86_400_000_000) return "has an impossible UTC offset";
  return undefined;
}

const EARLIEST_MS = Date.parse("0001-01-01T00:00:00.000Z");
const LATEST_MS = Date.parse("9999-12-31T23:59:59.999Z");

/**
 * Reads an event timestamp as Session-Buddy would, and gives its instant
 * truncated to milliseconds. A time without a zone is UTC.
 */
export function checkTimestamp(value: string): TimestampCheck {
  if (!value.includes("T")) return { ok: false, why: "must contain a 'T' between date and time" };
  if (value.length < 7 || !/^[\x20-\x7e]+$/.test(value)) return { ok: false, why: NOT_ISO };
  const sep = separatorAt(value);
  if (sep < 0 || value[sep] !== "T") return { ok: false, why: NOT_ISO };
  const date = parseDate(value, sep);
  const time = date && parseTime(value, sep + 1);
  if (!date || !time) return { ok: false, why: NOT_ISO };
  const problem = rangeProblem(date, time);
  if (problem) return { ok: false, why: problem };
  const [h, m, sec] = time.hms;
  const local = utcDate(date.year, date.month, date.day);
  local.setUTCHours(h, m, sec, Math.trunc(time.micros / 1000));
  const instant = local.getTime() - Math.trunc(time.offsetMicros / 1000);
  if (instant < EARLIEST_MS || instant > LATEST_MS) {
    return { ok: false, why: "must lie between years 0001 and 9999 in UTC" };
  }
  return { ok: true, date: new Date(instant) };
}

export function isTimestamp(value: string): boolean {
  return checkTimestamp(value).ok;
}
