import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BurstyCount,
  burstyLimiter,
  burstyWindows,
  consume,
  InboundRateLimiter,
  type Rate,
} from '../../../src/limits/rate-limits.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('BurstyCount', () => {
  it('allows the sustained points, then the extra burst points, then refuses until a window ends', () => {
    const windows = burstyWindows({ perSecond: 2, burst: 4 });
    const count = new BurstyCount();
    const taken = Array.from({ length: 6 }, () => count.take(windows, 1_000));
    expect(taken).toEqual([true, true, true, true, false, false]);
    // The sustained window (1 s) has ended; the burst window (ceil(2 / 2) = 1 s) too.
    expect(count.take(windows, 1_999)).toBe(false);
    expect(count.take(windows, 2_000)).toBe(true);
  });

  it('decides exactly as rate-limiter-flexible does for the same rate (fake clock)', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const rate = fc.record({
      perSecond: fc.integer({ min: 1, max: 5 }),
      extra: fc.integer({ min: 0, max: 6 }),
    });
    // Bursts (no time passing) and steps that land exactly on window boundaries, or just beside.
    const gap = fc.oneof(
      { arbitrary: fc.constant(0), weight: 4 },
      { arbitrary: fc.constantFrom(1, 999, 1_000, 1_001, 2_000), weight: 2 },
      { arbitrary: fc.integer({ min: 1, max: 2_500 }), weight: 1 },
    );
    const gaps = fc.array(gap, { minLength: 1, maxLength: 60 });
    await fc.assert(
      fc.asyncProperty(rate, gaps, async ({ perSecond, extra }, delays) => {
        const limit: Rate = { perSecond, burst: perSecond + extra };
        const reference = burstyLimiter(limit, 'reference');
        const windows = burstyWindows(limit);
        const count = new BurstyCount();
        for (const delay of delays) {
          vi.advanceTimersByTime(delay);
          const expected = (await consume(reference, 'client')).allowed;
          expect(count.take(windows, Date.now())).toBe(expected);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('InboundRateLimiter', () => {
  it('counts every message, and text frames against the subscribe rate too', () => {
    const limiter = new InboundRateLimiter({ perSecond: 3, burst: 3 }, { perSecond: 1, burst: 1 });
    const counts = { messageCount: new BurstyCount(), subscribeCount: new BurstyCount() };
    // Subscribe rate 1/s with its minimum burst window of one extra point.
    expect(limiter.check(counts, true, 0)).toBe('ok');
    expect(limiter.check(counts, true, 0)).toBe('ok');
    expect(limiter.check(counts, true, 0)).toBe('subscribe_limited');
    // Binary frames only count as messages: 3 per second plus one burst point, all used up.
    expect(limiter.check(counts, false, 0)).toBe('ok');
    expect(limiter.check(counts, false, 0)).toBe('flood');
    expect(limiter.check(counts, true, 1_000)).toBe('ok');
  });
});
