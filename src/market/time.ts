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
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

/** ISO-8601 UTC with microseconds, as the Coinbase feed writes times: 2014-11-07T08:19:27.028459Z. */
export function isoMicros(epochMicros: number): string {
  const millis = Math.floor(epochMicros / 1000);
  const micros = epochMicros - millis * 1000;
  return `${new Date(millis).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

const ISO_MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

export function isIsoTime(value: string): boolean {
  if (!ISO_MICROS.test(value)) return false;
  const parsed = new Date(value);
  // Date rolls impossible dates (Feb 30) into the next month; a real date survives the round trip.
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString().slice(0, 19) === value.slice(0, 19);
}
