import { describe, expect, it } from 'vitest';
import { RestRateLimiter } from '../../../src/limits/rest-rate-limit.js';
import { answerLimited, type MarketViews, type Readiness } from '../../../src/server/http-routes.js';

const views: MarketViews = {
  restProducts: () => [{ id: 'BTC-USD' }],
  restProduct: (id) => (id === 'BTC-USD' ? { id } : undefined),
  restBook: () => ({ bids: [], asks: [] }),
  restTicker: () => ({ price: '1' }),
};
const ready: Readiness = { notReadyReason: () => undefined };

describe('answerLimited: the REST routes behind the per-address limit', () => {
  it('counts every REST route, unknown products and sub-resources included, and refuses with 429 + Retry-After', () => {
    const limit = new RestRateLimiter({ perSecond: 1, burst: 3 });
    const refused: string[] = [];
    const ask = (query: Parameters<typeof answerLimited>[0]) =>
      answerLimited(query, views, ready, limit, 0, (reason) => refused.push(reason));
    expect(ask({ route: 'products', clientIp: 'a' }).status).toBe(200);
    expect(ask({ route: 'product', clientIp: 'a', productId: 'NOPE', resource: '', level: '' }).status).toBe(
      404,
    );
    expect(
      ask({ route: 'product', clientIp: 'a', productId: 'BTC-USD', resource: 'candles', level: '' }).status,
    ).toBe(404);
    expect(
      ask({ route: 'product', clientIp: 'a', productId: 'BTC-USD', resource: 'book', level: '2' }),
    ).toEqual({
      status: 429,
      body: '{"message":"Public rate limit exceeded","code":"rate_limited"}',
      headers: { 'Retry-After': '1' },
    });
    expect(refused).toEqual(['rate_limited']);
    expect(ask({ route: 'products', clientIp: 'b' }).status).toBe(200);
  });

  it('never limits readiness', () => {
    const limit = new RestRateLimiter({ perSecond: 1, burst: 1 });
    for (let i = 0; i < 5; i++)
      expect(answerLimited({ route: 'readyz' }, views, ready, limit, 0, () => {}).status).toBe(200);
    expect(limit.size).toBe(0);
  });

  it('a full limiter table answers 503 table_full with Retry-After', () => {
    const limit = new RestRateLimiter({ perSecond: 1, burst: 1 }, 1);
    const refused: string[] = [];
    answerLimited({ route: 'products', clientIp: 'a' }, views, ready, limit, 0, () => {});
    expect(
      answerLimited({ route: 'products', clientIp: 'b' }, views, ready, limit, 0, (r) => refused.push(r)),
    ).toEqual({
      status: 503,
      body: '{"message":"Service Unavailable","code":"table_full"}',
      headers: { 'Retry-After': '1' },
    });
    expect(refused).toEqual(['table_full']);
  });
});
