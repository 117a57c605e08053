/** Wall-clock milliseconds with sub-millisecond precision, comparable across threads. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Monotonic time (performance.now()) in whole milliseconds. For the process's first 24 days these
 * are small integers, which V8 stores inside an object's fields; a fraction would be boxed in a
 * separate heap number per field, which adds up for state kept per connection.
 */
export function monotonicMs(): number {
  return Math.floor(performance.now());
}

/** Wall-clock time in microseconds since the epoch, with sub-millisecond resolution. */
export function nowMicros(): number {
  return epochMicrosAt(performance.now());
}

/** The wall-clock time, in microseconds since the epoch, of a performance.now() reading. */
export function epochMicrosAt(performanceMs: number): number {
  return Math.floor((performance.timeOrigin + performanceMs) * 1000);
}

/** ISO-8601 UTC with microseconds, as the Coinbase feed writes times: 2014-11-07T08:19:27.028459Z. */
export function isoMicros(epochMicros: number): string {
  const millis = Math.floor(epochMicros / 1000);
  const micros = epochMicros - millis * 1000;
  return `${new Date(millis).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

const ZERO = 48;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The number written by `count` ASCII digits from `start`, or -1 if one of them is not a digit. */
function digitsAt(value: string, start: number, count: number): number {
  let n = 0;
  for (let i = start; i < start + count; i++) {
    const digit = value.charCodeAt(i) - ZERO;
    if (digit < 0 || digit > 9) return -1;
    n = n * 10 + digit;
  }
  return n;
}

function daysInMonth(year: number, month: number): number {
  if (month !== 2) return DAYS_IN_MONTH[month - 1]!;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return leap ? 29 : 28;
}

/**
 * ISO-8601 UTC as the feed writes it: YYYY-MM-DDTHH:MM:SS, optionally 1 to 9 fractional digits,
 * then Z; every field in range and the day one that exists in its month (proleptic Gregorian).
 * Hand-written rather than a regex and a Date round trip: every upstream event is checked.
 */
export function isIsoTime(value: string): boolean {
  const length = value.length;
  if (length < 20 || length > 30 || value.charCodeAt(length - 1) !== 90 /* Z */) return false;
  if (value[4] !== '-' || value[7] !== '-' || value[10] !== 'T' || value[13] !== ':' || value[16] !== ':')
    return false;
  const year = digitsAt(value, 0, 4);
  const month = digitsAt(value, 5, 2);
  const day = digitsAt(value, 8, 2);
  const hour = digitsAt(value, 11, 2);
  const minute = digitsAt(value, 14, 2);
  const second = digitsAt(value, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return false;
  if (length === 20) return true;
  // A fraction: a dot and 1 to 9 digits before the Z.
  return value[19] === '.' && length >= 22 && digitsAt(value, 20, length - 21) >= 0;
}
