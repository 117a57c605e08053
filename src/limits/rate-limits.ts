import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

/** A rate: `perSecond` sustained, with up to `burst` in a short burst (as the Coinbase feed documents). */
export interface Rate {
  readonly perSecond: number;
  readonly burst: number;
}

export type RateDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly retryAfterMs: number };

const ALLOWED: RateDecision = { allowed: true };

/** One fixed window as rate-limiter-flexible counts it: `points` per `duration` seconds. */
export interface WindowOptions {
  readonly points: number;
  readonly duration: number;
}

/**
 * The two windows of a bursty rate: a sustained window of `perSecond` points per second, and a
 * burst window holding the extra `burst - perSecond` points, refilled over the time the sustained
 * rate needs to deliver them. The burst window is only drawn on once the sustained one is spent.
 */
export interface BurstyWindows {
  readonly sustained: WindowOptions;
  readonly burst: WindowOptions;
}

export function burstyWindows(rate: Rate): BurstyWindows {
  const extra = Math.max(0, rate.burst - rate.perSecond);
  return {
    sustained: { points: rate.perSecond, duration: 1 },
    burst: { points: Math.max(1, extra), duration: Math.max(1, Math.ceil(extra / rate.perSecond)) },
  };
}

/** rate-limiter-flexible's BurstyRateLimiter over the two windows of `rate`, in memory. */
export function burstyLimiter(rate: Rate, keyPrefix: string): BurstyRateLimiter {
  const { sustained, burst } = burstyWindows(rate);
  return new BurstyRateLimiter(
    new RateLimiterMemory({ keyPrefix, ...sustained }),
    new RateLimiterMemory({ keyPrefix: `${keyPrefix}-burst`, ...burst }),
  );
}

/** Consumes one point; a limiter failure (not a rejection) lets the request through. */
export async function consume(limiter: BurstyRateLimiter, key: string): Promise<RateDecision> {
  try {
    await limiter.consume(key);
    return ALLOWED;
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) return { allowed: false, retryAfterMs: rejection.msBeforeNext };
    return ALLOWED;
  }
}

/** New connections per client IP per second (WS_CONNECT_RATE_PER_IP / WS_CONNECT_BURST_PER_IP). */
export class ConnectRateLimiter {
  private readonly limiter: BurstyRateLimiter;

  constructor(rate: Rate) {
    this.limiter = burstyLimiter(rate, 'connect');
  }

  admit(clientIp: string): Promise<RateDecision> {
    return consume(this.limiter, clientIp);
  }
}

/**
 * Where one client stands against one bursty rate, counted exactly as burstyLimiter() counts: each
 * window opens with its first point and lasts its duration, a point over the limit still counts, and
 * the burst window is drawn on only once the sustained one is spent. Unlike RateLimiterMemory, which
 * answers with a promise and keeps a record and a timer per key for the window's duration, this is
 * decided synchronously and lives in the object that owns it: four small integers (times from
 * monotonicMs()).
 */
export class BurstyCount {
  private windowEndsAt = 0;
  private used = 0;
  private burstEndsAt = 0;
  private burstUsed = 0;

  /** Counts one point at `nowMs` (monotonicMs(): whole milliseconds); false if it is over the rate. */
  take(windows: BurstyWindows, nowMs: number): boolean {
    if (nowMs >= this.windowEndsAt) {
      this.windowEndsAt = nowMs + windows.sustained.duration * 1000;
      this.used = 0;
    }
    if (++this.used <= windows.sustained.points) return true;
    if (nowMs >= this.burstEndsAt) {
      this.burstEndsAt = nowMs + windows.burst.duration * 1000;
      this.burstUsed = 0;
    }
    return ++this.burstUsed <= windows.burst.points;
  }
}

export type InboundDecision = 'ok' | 'subscribe_limited' | 'flood';

/** One connection's counts against its inbound rates (see InboundRateLimiter); held by the connection. */
export interface InboundCounts {
  readonly messageCount: BurstyCount;
  readonly subscribeCount: BurstyCount;
}

/**
 * Per-connection inbound limits: every message counts towards `messages`; every text frame also
 * towards `subscribes` (subscribe and unsubscribe are the only requests a client sends, so a text
 * frame is counted as one before it is parsed).
 */
export class InboundRateLimiter {
  private readonly messages: BurstyWindows;
  private readonly subscribes: BurstyWindows;

  constructor(messages: Rate, subscribes: Rate) {
    this.messages = burstyWindows(messages);
    this.subscribes = burstyWindows(subscribes);
  }

  check(counts: InboundCounts, isSubscription: boolean, nowMs: number): InboundDecision {
    if (!counts.messageCount.take(this.messages, nowMs)) return 'flood';
    if (isSubscription && !counts.subscribeCount.take(this.subscribes, nowMs)) return 'subscribe_limited';
    return 'ok';
  }
}
