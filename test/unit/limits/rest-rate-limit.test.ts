import { describe, expect, it } from 'vitest';
import { RestRateLimiter } from '../../../src/limits/rest-rate-limit.js';

const A = '10.0.0.1';
const B = '10.0.0.2';

function takeN(limiter: RestRateLimiter, ip: string, n: number, nowMs: number): number {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (limiter.take(ip, nowMs).allowed) allowed++;
  return allowed;
}

describe('RestRateLimiter: a token bucket per address', () => {
  it('serves a burst at once, then refuses with Retry-After in whole seconds, rounded up', () => {
    const limiter = new RestRateLimiter({ perSecond: 10, burst: 15 });
    expect(takeN(limiter, A, 15, 1_000)).toBe(15);
    // One token needs 100 ms at 10/s: rounded up to 1 s.
    expect(limiter.take(A, 1_000)).toEqual({ allowed: false, reason: 'rate_limited', retryAfterSeconds: 1 });
    // Another address has its own bucket.
    expect(limiter.take(B, 1_000)).toEqual({ allowed: true });
  });

  it('refills at the sustained rate, never above the burst', () => {
    const limiter = new RestRateLimiter({ perSecond: 10, burst: 15 });
    takeN(limiter, A, 15, 0);
    expect(takeN(limiter, A, 10, 500)).toBe(5);
    // A long pause refills to the burst, not beyond.
    expect(takeN(limiter, A, 20, 60_000)).toBe(15);
  });

  it('a refused request takes no token: waiting Retry-After is enough', () => {
    const limiter = new RestRateLimiter({ perSecond: 0.5, burst: 2 });
    takeN(limiter, A, 2, 0);
    const refused = limiter.take(A, 0);
    expect(refused).toEqual({ allowed: false, reason: 'rate_limited', retryAfterSeconds: 2 });
    for (let t = 100; t < 2_000; t += 100) expect(limiter.take(A, t).allowed, `at ${t} ms`).toBe(false);
    expect(limiter.take(A, 2_000)).toEqual({ allowed: true });
  });

  it('holds at most `capacity` addresses: refilled buckets are forgotten, active ones never', () => {
    const limiter = new RestRateLimiter({ perSecond: 10, burst: 10 }, 4);
    for (let i = 0; i < 4; i++) expect(limiter.take(`10.0.1.${i}`, 0).allowed).toBe(true);
    // Full of addresses active within the refill time (1 s): a new one is refused, none forgotten.
    expect(limiter.take(B, 500)).toEqual({ allowed: false, reason: 'table_full', retryAfterSeconds: 1 });
    expect(limiter.size).toBe(4);
    // 10.0.1.0 empties its bucket; at 1 s the other three have refilled and may be forgotten.
    expect(takeN(limiter, '10.0.1.0', 12, 600)).toBe(10);
    expect(limiter.take(B, 1_000)).toEqual({ allowed: true });
    expect(limiter.size).toBe(4);
    // 10.0.1.0's count survived: 0.4 s at 10/s refilled 4 tokens, not the burst of 10.
    expect(takeN(limiter, '10.0.1.0', 10, 1_000)).toBe(4);
  });

  it('stays bounded under a stream of distinct addresses', () => {
    const limiter = new RestRateLimiter({ perSecond: 10, burst: 15 }, 1_024);
    let refused = 0;
    let largest = 0;
    for (let i = 0; i < 100_000; i++) {
      const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      if (!limiter.take(ip, i).allowed) refused++;
      largest = Math.max(largest, limiter.size);
    }
    expect(largest).toBe(1_024);
    // One new address per millisecond, buckets refilled after 1.5 s: 1,500 would be held at once.
    expect(refused).toBeGreaterThan(0);
  });
});
