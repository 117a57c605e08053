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

  // BUG: V8's Date.parse rolls an impossible day of the month over into the next month
  // (2023-02-30 becomes 2023-03-02), so the range check in isIsoTime lets these through.
  it('rejects days that do not exist in their month', () => {
    expect(isIsoTime('2023-02-29T00:00:00Z')).toBe(false);
    expect(isIsoTime('2024-02-30T00:00:00.000000Z')).toBe(false);
    expect(isIsoTime('2024-04-31T00:00:00Z')).toBe(false);
  });
});
