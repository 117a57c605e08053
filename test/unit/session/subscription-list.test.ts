import { describe, expect, it } from 'vitest';
import type { Channel } from '../../../src/market/types.js';
import {
  channelsOf,
  countOf,
  holds,
  idsOf,
  NO_SUBSCRIPTIONS,
  type SubscriptionList,
  withoutSubscription,
  withSubscription,
} from '../../../src/session/subscription-list.js';

const build = (...pairs: Array<[Channel, string]>): SubscriptionList =>
  pairs.reduce((list, [channel, id]) => withSubscription(list, channel, id), NO_SUBSCRIPTIONS);

describe('SubscriptionList', () => {
  it("holds each channel's ids after its name, in subscription order", () => {
    const list = build(['level2', 'BTC-USD'], ['ticker', 'BTC-USD'], ['level2', 'ETH-USD'], ['status', '']);
    expect(list).toEqual(['level2', 'BTC-USD', 'ETH-USD', 'ticker', 'BTC-USD', 'status', '']);
    expect(channelsOf(list)).toEqual([
      { channel: 'level2', ids: ['BTC-USD', 'ETH-USD'] },
      { channel: 'ticker', ids: ['BTC-USD'] },
      { channel: 'status', ids: [''] },
    ]);
    expect(countOf(list)).toBe(4);
    expect(idsOf(list, 'level2')).toEqual(['BTC-USD', 'ETH-USD']);
    expect(idsOf(list, 'matches')).toEqual([]);
  });

  it('looks an id up in its own channel only', () => {
    const list = build(['level2', 'BTC-USD'], ['ticker', 'ETH-USD']);
    expect(holds(list, 'level2', 'BTC-USD')).toBe(true);
    expect(holds(list, 'level2', 'ETH-USD')).toBe(false);
    expect(holds(list, 'ticker', 'BTC-USD')).toBe(false);
    expect(holds(list, 'matches', 'BTC-USD')).toBe(false);
  });

  it('returns the same list for a change that changes nothing', () => {
    const list = build(['level2', 'BTC-USD']);
    expect(withSubscription(list, 'level2', 'BTC-USD')).toBe(list);
    expect(withoutSubscription(list, 'level2', 'ETH-USD')).toBe(list);
    expect(withoutSubscription(list, 'ticker', 'BTC-USD')).toBe(list);
  });

  it('keeps a channel in place while it holds ids, and drops it with its last one', () => {
    let list = build(['level2', 'BTC-USD'], ['ticker', 'BTC-USD'], ['level2', 'ETH-USD']);
    list = withoutSubscription(list, 'level2', 'BTC-USD');
    expect(list).toEqual(['level2', 'ETH-USD', 'ticker', 'BTC-USD']);
    list = withoutSubscription(list, 'level2', 'ETH-USD');
    expect(list).toEqual(['ticker', 'BTC-USD']);
    // Subscribed again, it comes last.
    list = withSubscription(list, 'level2', 'ETH-USD');
    expect(list).toEqual(['ticker', 'BTC-USD', 'level2', 'ETH-USD']);
    list = withoutSubscription(withoutSubscription(list, 'ticker', 'BTC-USD'), 'level2', 'ETH-USD');
    expect(list).toBe(NO_SUBSCRIPTIONS);
  });

  it('never changes a list it was given', () => {
    const list = build(['level2', 'BTC-USD']);
    const copy = [...list];
    withSubscription(list, 'level2', 'ETH-USD');
    withSubscription(list, 'ticker', 'ETH-USD');
    withoutSubscription(list, 'level2', 'BTC-USD');
    expect(list).toEqual(copy);
    expect(NO_SUBSCRIPTIONS).toEqual([]);
  });
});
