/**
 * The REST rate limit per client address: a token bucket of `burst` tokens refilled at `perSecond`,
 * one token per request (Coinbase's public REST limit is 10 requests per second, bursts of 15).
 *
 * Leaf module. Decided synchronously on the one thread that answers REST requests (the main
 * thread: worker threads forward them there), so it is exact for the process without sharing.
 *
 * Memory is bounded: at most `capacity` addresses are held. A bucket that has refilled to `burst`
 * is the same as no bucket, so it may be forgotten; the map is kept in order of last use (an entry
 * is moved to the end on every request), so the reclaimable buckets are the oldest ones and a new
 * address reclaims from the front in O(1). Only when every held address has used its bucket within
 * the refill time (`burst / perSecond` seconds) is a new address refused (`table_full`), as the
 * WebSocket admission does when its table is full: no client's count is ever dropped early.
 */

export interface TokenBucketRate {
  readonly perSecond: number;
  readonly burst: number;
}

export type RestRateDecision =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      readonly reason: 'rate_limited' | 'table_full';
      /** Whole seconds (rounded up, at least 1) until a request from this address would be served. */
      readonly retryAfterSeconds: number;
    };

interface Bucket {
  tokens: number;
  /** monotonic milliseconds of `tokens`. */
  at: number;
}

const ALLOWED: RestRateDecision = { allowed: true };

/** Addresses held at most by default: about 100 bytes each, so a few megabytes at worst. */
export const DEFAULT_REST_LIMIT_CAPACITY = 65_536;

export class RestRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly refillMs: number;

  constructor(
    private readonly rate: TokenBucketRate,
    private readonly capacity = DEFAULT_REST_LIMIT_CAPACITY,
  ) {
    if (!(rate.perSecond > 0) || !(rate.burst >= 1)) throw new RangeError('rate and burst must be positive');
    this.refillMs = (rate.burst / rate.perSecond) * 1000;
  }

  /** Takes one token for `clientIp` (a canonical address) at `nowMs` (a monotonic clock). */
  take(clientIp: string, nowMs: number): RestRateDecision {
    let bucket = this.buckets.get(clientIp);
    if (bucket) {
      this.buckets.delete(clientIp);
      bucket.tokens = Math.min(
        this.rate.burst,
        bucket.tokens + ((nowMs - bucket.at) * this.rate.perSecond) / 1000,
      );
      bucket.at = nowMs;
    } else {
      if (!this.makeRoom(nowMs)) {
        const oldest = this.buckets.values().next().value as Bucket;
        return {
          allowed: false,
          reason: 'table_full',
          retryAfterSeconds: seconds(oldest.at + this.refillMs - nowMs),
        };
      }
      bucket = { tokens: this.rate.burst, at: nowMs };
    }
    this.buckets.set(clientIp, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return ALLOWED;
    }
    return {
      allowed: false,
      reason: 'rate_limited',
      retryAfterSeconds: seconds(((1 - bucket.tokens) / this.rate.perSecond) * 1000),
    };
  }

  /** Addresses held now. */
  get size(): number {
    return this.buckets.size;
  }

  /** Forgets refilled buckets from the front until there is room; false if there is none. */
  private makeRoom(nowMs: number): boolean {
    for (const [ip, bucket] of this.buckets) {
      if (this.buckets.size < this.capacity) return true;
      if (nowMs - bucket.at < this.refillMs) return false;
      this.buckets.delete(ip);
    }
    return this.buckets.size < this.capacity;
  }
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
