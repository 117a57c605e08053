import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { epochMs, isIsoTime, isoMicros, nowMicros } from '../../../src/market/time.js';

const FEED_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

describe('isoMicros', () => {
  it('writes UTC with exactly six fractional digits and a trailing Z', () => {
    expect(isoMicros(0)).toBe('1970-01-01T00:00:00.000000Z');
    expect(isoMicros(1)).toBe('1970-01-01T00:00:00.000001Z');
    expect(isoMicros(999)).toBe('1970-01-01T00:00:00.000999Z');
    expect(isoMicros(1_000)).toBe('1970-01-01T00:00:00.001000Z');
    expect(isoMicros(1_415_348_367_028_459)).toBe('2014-11-07T08:19:27.028459Z');
    expect(isoMicros(1_700_000_000_123_456)).toBe('2023-11-14T22:13:20.123456Z');
    expect(isoMicros(1_709_294_399_999_999)).toBe('2024-03-01T11:59:59.999999Z');
  });

  it('keeps microseconds when they round-trip through the millisecond date', () => {
    for (const micros of [1, 10, 100, 500, 999]) {
      const text = isoMicros(1_709_294_400_000_000 + micros);
      expect(text).toMatch(FEED_TIME);
      expect(text.slice(-7, -1)).toBe(String(micros).padStart(6, '0'));
      expect(Date.parse(text)).toBe(1_709_294_400_000 + Math.floor(micros / 1000));
    }
  });

  it('produces times isIsoTime accepts', () => {
    expect(isIsoTime(isoMicros(1_709_294_400_123_456))).toBe(true);
  });
});

describe('nowMicros', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is an integer count of microseconds close to the wall clock', () => {
    const before = Date.now();
    const micros = nowMicros();
    const after = Date.now();
    expect(Number.isSafeInteger(micros)).toBe(true);
    // performance.timeOrigin + now() may drift slightly from Date.now(); allow a second.
    expect(micros / 1000).toBeGreaterThan(before - 1_000);
    expect(micros / 1000).toBeLessThan(after + 1_000);
    expect(isoMicros(micros)).toMatch(FEED_TIME);
  });

  it('agrees with epochMs', () => {
    vi.useFakeTimers();
    const ms = epochMs();
    expect(nowMicros()).toBe(Math.floor(ms * 1000));
    vi.advanceTimersByTime(250);
    expect(epochMs() - ms).toBe(250);
  });

  it('advances with the monotonic clock', () => {
    vi.useFakeTimers();
    const first = nowMicros();
    vi.advanceTimersByTime(1_500);
    expect(nowMicros() - first).toBe(1_500_000);
  });
});

describe('isIsoTime', () => {
  it('accepts ISO-8601 UTC times with or without fractions', () => {
    for (const ok of [
      '2014-11-07T08:19:27.028459Z',
      '2019-08-14T20:42:27.265Z',
      '2024-03-01T12:00:00Z',
      '2024-03-01T12:00:00.1Z',
      '2024-03-01T12:00:00.123456789Z',
      '2024-02-29T23:59:59.999999Z',
    ]) {
      expect(isIsoTime(ok), ok).toBe(true);
    }
  });

  it('rejects other formats, offsets and impossible fields', () => {
    for (const bad of [
      '',
      '2024-03-01',
      '2024-03-01T12:00:00',
      '2024-03-01T12:00:00+00:00',
      '2024-03-01 12:00:00Z',
      '2024-03-01T12:00:00.Z',
      '2024-03-01T12:00:00.1234567890Z',
      '2024-13-01T12:00:00Z',
      '2024-03-32T12:00:00Z',
      '2024-03-01T12:60:00Z',
      '2024-03-01T12:00:60Z',
      '1709294400000',
      'Fri, 01 Mar 2024 12:00:00 GMT',
      '2024-03-01T12:00:00.000000z',
    ]) {
      expect(isIsoTime(bad), bad).toBe(false);
    }
  });

  // A field-by-field range check is not enough: the day must exist in its month (and year).
  it('rejects days that do not exist in their month', () => {
    expect(isIsoTime('2023-02-29T00:00:00Z')).toBe(false);
    expect(isIsoTime('2024-02-30T00:00:00.000000Z')).toBe(false);
    expect(isIsoTime('2024-04-31T00:00:00Z')).toBe(false);
  });

  /** The definition isIsoTime implements by hand: the pattern, and a real date that survives a Date round trip. */
  function referenceIsIsoTime(value: string): boolean {
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/.test(value)) return false;
    const parsed = new Date(value);
    return !Number.isNaN(parsed.getTime()) && parsed.toISOString().slice(0, 19) === value.slice(0, 19);
  }

  it('agrees with a regex and a Date round trip on near-miss inputs', () => {
    const digits = (n: number) =>
      fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: n, maxLength: n });
    /** Mostly a number around the field's range, written with its width; sometimes anything. */
    const field = (width: number, max: number) =>
      fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: 0, max }).map((n) => String(n).padStart(width, '0')) },
        { weight: 1, arbitrary: digits(width) },
        { weight: 1, arbitrary: fc.string({ maxLength: width + 1 }) },
      );
    const separator = (s: string) =>
      fc.oneof(
        { weight: 9, arbitrary: fc.constant(s) },
        { weight: 1, arbitrary: fc.string({ maxLength: 1 }) },
      );
    const fraction = fc.oneof(
      fc.constant(''),
      fc.constant('.'),
      fc.integer({ min: 1, max: 11 }).chain((n) => digits(n).map((d) => `.${d}`)),
    );
    const nearIso = fc
      .tuple(
        field(4, 9999),
        separator('-'),
        field(2, 13),
        separator('-'),
        field(2, 32),
        separator('T'),
        field(2, 25),
        separator(':'),
        field(2, 61),
        separator(':'),
        field(2, 61),
        fraction,
        separator('Z'),
      )
      .map((parts) => parts.join(''));
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.oneof({ weight: 9, arbitrary: nearIso }, { weight: 1, arbitrary: fc.string() }),
        (value) => {
          const expected = referenceIsIsoTime(value);
          if (expected) accepted++;
          expect(isIsoTime(value), value).toBe(expected);
        },
      ),
      { numRuns: 20_000 },
    );
    // Both answers were exercised, not just the rejections.
    expect(accepted).toBeGreaterThan(1_000);
    for (let year = 1896; year <= 2104; year += 4) {
      for (const day of ['28', '29', '30']) {
        const value = `${year}-02-${day}T00:00:00Z`;
        expect(isIsoTime(value), value).toBe(referenceIsIsoTime(value));
      }
    }
  });
});
