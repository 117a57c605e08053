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

/**
 * rate-limiter-flexible's BurstyRateLimiter: a sustained limiter of `perSecond` per second, and a
 * burst limiter holding the extra `burst - perSecond` points, refilled over the time the sustained
 * rate needs to deliver them.
 */
export function burstyLimiter(rate: Rate, keyPrefix: string): BurstyRateLimiter {
  const extra = Math.max(0, rate.burst - rate.perSecond);
  return new BurstyRateLimiter(
    new RateLimiterMemory({ keyPrefix, points: rate.perSecond, duration: 1 }),
    new RateLimiterMemory({
      keyPrefix: `${keyPrefix}-burst`,
      points: Math.max(1, extra),
      duration: Math.max(1, Math.ceil(extra / rate.perSecond)),
    }),
  );
}

/** Consumes one point; a limiter failure (not a rejection) lets the request through. */
export async function consume(limiter: BurstyRateLimiter, key: string | number): Promise<RateDecision> {
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

export type InboundDecision = 'ok' | 'subscribe_limited' | 'flood';

/**
 * Per-connection inbound limits: every message counts towards `messages`; every text frame also
 * towards `subscribes` (subscribe and unsubscribe are the only requests a client sends, so a text
 * frame is counted as one before it is parsed). Keys are the gateway's own connection ids.
 */
export class InboundRateLimiter {
  private readonly messages: BurstyRateLimiter;
  private readonly subscribes: BurstyRateLimiter;

  constructor(messages: Rate, subscribes: Rate) {
    this.messages = burstyLimiter(messages, 'messages');
    this.subscribes = burstyLimiter(subscribes, 'subscribes');
  }

  async check(connectionId: number, isSubscription: boolean): Promise<InboundDecision> {
    if (!(await consume(this.messages, connectionId)).allowed) return 'flood';
    if (isSubscription && !(await consume(this.subscribes, connectionId)).allowed) return 'subscribe_limited';
    return 'ok';
  }
}
