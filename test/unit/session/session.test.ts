import { beforeEach, describe, expect, it } from 'vitest';
import type { Channel } from '../../../src/market/types.js';
import type { ProductCatalogue } from '../../../src/session/requests.js';
import { type ClientConnection, ClientSession, type SessionObserver } from '../../../src/session/session.js';

type Entry =
  | { readonly kind: 'send'; readonly message: Record<string, unknown> }
  | { readonly kind: 'attach' | 'detach'; readonly channel: Channel; readonly productId: string };

/** Records everything the session does to its socket, in order. */
class FakeConnection implements ClientConnection {
  readonly log: Entry[] = [];

  sendControl(payload: string): void {
    this.log.push({ kind: 'send', message: JSON.parse(payload) as Record<string, unknown> });
  }

  attach(channel: Channel, productId: string): void {
    this.log.push({ kind: 'attach', channel, productId });
  }

  detach(channel: Channel, productId: string): void {
    this.log.push({ kind: 'detach', channel, productId });
  }

  /** The log since the last call, compactly: sends as their message, the rest as tuples. */
  take(): unknown[] {
    const out = this.log.map((e) => (e.kind === 'send' ? e.message : [e.kind, e.channel, e.productId]));
    this.log.length = 0;
    return out;
  }
}

class FakeObserver implements SessionObserver {
  readonly deltas: Array<[Channel, number]> = [];
  readonly errors: string[] = [];

  subscriptionsChanged(channel: Channel, delta: number): void {
    this.deltas.push([channel, delta]);
  }

  errorSent(code: string): void {
    this.errors.push(code);
  }

  /** Net subscriptions per channel, as a metrics gauge would hold them. */
  totals(): Record<string, number> {
    const totals: Record<string, number> = {};
    for (const [channel, delta] of this.deltas) totals[channel] = (totals[channel] ?? 0) + delta;
    return totals;
  }
}

const PRODUCTS = new Set(['BTC-USD', 'ETH-USD', 'ETH-EUR', 'ETH-BTC']);
const catalogue: ProductCatalogue = { hasProduct: (id) => PRODUCTS.has(id) };

let connection: FakeConnection;
let observer: FakeObserver;
let session: ClientSession;

function send(message: unknown): unknown[] {
  session.handleText(JSON.stringify(message));
  return connection.take();
}

function subscriptions(...channels: Array<[string, string[]]>) {
  return { type: 'subscriptions', channels: channels.map(([name, product_ids]) => ({ name, product_ids })) };
}

beforeEach(() => {
  connection = new FakeConnection();
  observer = new FakeObserver();
  session = new ClientSession(connection, catalogue, observer, {
    maxProductsPerRequest: 50,
    maxSubscriptions: 200,
  });
});

describe('subscribe', () => {
  it('replies with the subscriptions, then attaches each new (channel, product)', () => {
    expect(session.hasSubscribed).toBe(false);
    expect(
      send({
        type: 'subscribe',
        product_ids: ['ETH-USD', 'ETH-EUR'],
        channels: ['level2_batch', 'heartbeat', { name: 'ticker', product_ids: ['ETH-BTC'] }],
      }),
    ).toEqual([
      subscriptions(
        ['level2_batch', ['ETH-USD', 'ETH-EUR']],
        ['heartbeat', ['ETH-USD', 'ETH-EUR']],
        ['ticker', ['ETH-BTC', 'ETH-USD', 'ETH-EUR']],
      ),
      ['attach', 'level2_batch', 'ETH-USD'],
      ['attach', 'level2_batch', 'ETH-EUR'],
      ['attach', 'heartbeat', 'ETH-USD'],
      ['attach', 'heartbeat', 'ETH-EUR'],
      ['attach', 'ticker', 'ETH-BTC'],
      ['attach', 'ticker', 'ETH-USD'],
      ['attach', 'ticker', 'ETH-EUR'],
    ]);
    expect(session.hasSubscribed).toBe(true);
    expect(observer.totals()).toEqual({ level2_batch: 2, heartbeat: 2, ticker: 3 });
    expect(observer.errors).toEqual([]);
  });

  it('adds to the set: the reply lists everything, only new pairs attach', () => {
    send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker', 'matches'] });
    expect(
      send({ type: 'subscribe', product_ids: ['ETH-USD', 'BTC-USD'], channels: ['ticker', 'heartbeat'] }),
    ).toEqual([
      subscriptions(
        ['ticker', ['BTC-USD', 'ETH-USD']],
        ['matches', ['BTC-USD']],
        ['heartbeat', ['ETH-USD', 'BTC-USD']],
      ),
      ['attach', 'ticker', 'ETH-USD'],
      ['attach', 'heartbeat', 'ETH-USD'],
      ['attach', 'heartbeat', 'BTC-USD'],
    ]);
    // Repeating a subscription changes nothing but still gets the reply.
    expect(send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['matches'] })).toEqual([
      subscriptions(
        ['ticker', ['BTC-USD', 'ETH-USD']],
        ['matches', ['BTC-USD']],
        ['heartbeat', ['ETH-USD', 'BTC-USD']],
      ),
    ]);
    expect(observer.totals()).toEqual({ ticker: 2, matches: 1, heartbeat: 2 });
  });

  it('echoes the current channel name for the old batch names and attaches once', () => {
    expect(
      send({
        type: 'subscribe',
        product_ids: ['BTC-USD'],
        channels: ['ticker_1000', 'ticker_batch', 'level2_50'],
      }),
    ).toEqual([
      subscriptions(['ticker_batch', ['BTC-USD']], ['level2_batch', ['BTC-USD']]),
      ['attach', 'ticker_batch', 'BTC-USD'],
      ['attach', 'level2_batch', 'BTC-USD'],
    ]);
  });

  it('subscribes to status with no products and one attach', () => {
    expect(send({ type: 'subscribe', channels: [{ name: 'status' }] })).toEqual([
      subscriptions(['status', []]),
      ['attach', 'status', ''],
    ]);
    expect(send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['status'] })).toEqual([
      subscriptions(['status', []]),
    ]);
    expect(observer.totals()).toEqual({ status: 1 });
  });

  it('still subscribes the valid part of a request with errors, after one error message', () => {
    expect(
      send({ type: 'subscribe', product_ids: ['BTC-USD', 'XRP-USD'], channels: ['ticker', 'full'] }),
    ).toEqual([
      {
        type: 'error',
        message: 'Failed to subscribe',
        reason: 'XRP-USD is not a valid product',
        code: 'unknown_product',
      },
      subscriptions(['ticker', ['BTC-USD']]),
      ['attach', 'ticker', 'BTC-USD'],
    ]);
    expect(observer.errors).toEqual(['unknown_product']);
    expect(session.hasSubscribed).toBe(true);
  });

  it('sends only the error when nothing in the request is valid', () => {
    expect(send({ type: 'subscribe', product_ids: ['XRP-USD'], channels: ['ticker'] })).toEqual([
      {
        type: 'error',
        message: 'Failed to subscribe',
        reason: 'XRP-USD is not a valid product',
        code: 'unknown_product',
      },
    ]);
    expect(session.hasSubscribed).toBe(false);
    expect(observer.deltas).toEqual([]);
  });

  it('answers "No channels provided" as the feed does', () => {
    expect(send({ type: 'subscribe', product_ids: ['BTC-USD'] })).toEqual([
      {
        type: 'error',
        message: 'Failed to subscribe',
        reason: 'No channels provided',
        code: 'empty_subscription',
      },
    ]);
    expect(observer.errors).toEqual(['empty_subscription']);
  });

  it('answers malformed JSON, non-objects and unknown types with an error and keeps the state', () => {
    send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker'] });
    session.handleText('{not json');
    session.handleText('[1,2]');
    session.handleText('{"type":"hello"}');
    const replies = connection.take() as Array<Record<string, unknown>>;
    expect(replies.map((r) => [r.type, r.message, r.code])).toEqual([
      ['error', 'Malformed JSON', 'malformed_json'],
      ['error', 'Message must be a JSON object', 'not_an_object'],
      ['error', 'Unknown message type', 'unknown_type'],
    ]);
    expect(observer.errors).toEqual(['malformed_json', 'not_an_object', 'unknown_type']);
    expect(send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker'] })).toEqual([
      subscriptions(['ticker', ['BTC-USD']]),
    ]);
  });

  it('answers a binary frame with an error and nothing else', () => {
    session.handleBinary();
    expect(connection.take()).toEqual([
      {
        type: 'error',
        message: 'Binary frames are not supported',
        reason: 'send subscribe/unsubscribe requests as JSON text frames',
        code: 'binary_frame',
      },
    ]);
    expect(observer.errors).toEqual(['binary_frame']);
    expect(session.hasSubscribed).toBe(false);
  });
});

describe('unsubscribe', () => {
  beforeEach(() => {
    send({
      type: 'subscribe',
      product_ids: ['BTC-USD', 'ETH-USD'],
      channels: ['heartbeat', 'ticker', 'level2_batch', 'status'],
    });
    observer.deltas.length = 0;
  });

  it('removes the named products, detaches them and replies with what is left', () => {
    expect(
      send({ type: 'unsubscribe', product_ids: ['ETH-USD'], channels: ['ticker', 'level2_batch'] }),
    ).toEqual([
      ['detach', 'ticker', 'ETH-USD'],
      ['detach', 'level2_batch', 'ETH-USD'],
      subscriptions(
        ['heartbeat', ['BTC-USD', 'ETH-USD']],
        ['ticker', ['BTC-USD']],
        ['level2_batch', ['BTC-USD']],
        ['status', []],
      ),
    ]);
    expect(observer.deltas).toEqual([
      ['ticker', -1],
      ['level2_batch', -1],
    ]);
  });

  it('with no products removes the channel for all products (the documented heartbeat example)', () => {
    expect(send({ type: 'unsubscribe', channels: ['heartbeat'] })).toEqual([
      ['detach', 'heartbeat', 'BTC-USD'],
      ['detach', 'heartbeat', 'ETH-USD'],
      subscriptions(
        ['ticker', ['BTC-USD', 'ETH-USD']],
        ['level2_batch', ['BTC-USD', 'ETH-USD']],
        ['status', []],
      ),
    ]);
    expect(observer.deltas).toEqual([
      ['heartbeat', -1],
      ['heartbeat', -1],
    ]);
  });

  it('removes status, and drops a channel from the reply once its last product goes', () => {
    expect(send({ type: 'unsubscribe', channels: ['status'] })).toEqual([
      ['detach', 'status', ''],
      subscriptions(
        ['heartbeat', ['BTC-USD', 'ETH-USD']],
        ['ticker', ['BTC-USD', 'ETH-USD']],
        ['level2_batch', ['BTC-USD', 'ETH-USD']],
      ),
    ]);
    send({ type: 'unsubscribe', product_ids: ['BTC-USD', 'ETH-USD'], channels: ['ticker'] });
    // A channel subscribed again goes to the end of the list.
    expect(send({ type: 'subscribe', product_ids: ['ETH-USD'], channels: ['ticker'] })).toEqual([
      subscriptions(
        ['heartbeat', ['BTC-USD', 'ETH-USD']],
        ['level2_batch', ['BTC-USD', 'ETH-USD']],
        ['ticker', ['ETH-USD']],
      ),
      ['attach', 'ticker', 'ETH-USD'],
    ]);
  });

  it('ignores products and channels that are not subscribed, but still replies', () => {
    expect(send({ type: 'unsubscribe', product_ids: ['ETH-BTC'], channels: ['ticker', 'matches'] })).toEqual([
      subscriptions(
        ['heartbeat', ['BTC-USD', 'ETH-USD']],
        ['ticker', ['BTC-USD', 'ETH-USD']],
        ['level2_batch', ['BTC-USD', 'ETH-USD']],
        ['status', []],
      ),
    ]);
    expect(observer.deltas).toEqual([]);
  });

  it('uses "Failed to unsubscribe" in its errors', () => {
    const replies = send({ type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['bogus', 'ticker'] });
    expect(replies[0]).toMatchObject({
      type: 'error',
      message: 'Failed to unsubscribe',
      code: 'unknown_channel',
    });
    expect(replies.slice(1)).toEqual([
      ['detach', 'ticker', 'BTC-USD'],
      subscriptions(
        ['heartbeat', ['BTC-USD', 'ETH-USD']],
        ['ticker', ['ETH-USD']],
        ['level2_batch', ['BTC-USD', 'ETH-USD']],
        ['status', []],
      ),
    ]);
  });

  // Regression: parseRequest used to drop the unknown product and leave the channel with no products,
  // which unsubscribe() read as "no products named: the whole channel goes".
  it('does not drop the whole channel when the only named product is unknown', () => {
    const replies = send({ type: 'unsubscribe', product_ids: ['XRP-USD'], channels: ['ticker'] });
    expect(replies[0]).toMatchObject({ type: 'error', reason: 'XRP-USD is not a valid product' });
    expect(replies.filter((r) => Array.isArray(r) && r[0] === 'detach')).toEqual([]);
    expect(observer.deltas).toEqual([]);
    // Whatever the reply to that request, the ticker subscriptions are all still there.
    expect(send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['heartbeat'] })).toEqual([
      subscriptions(
        ['heartbeat', ['BTC-USD', 'ETH-USD']],
        ['ticker', ['BTC-USD', 'ETH-USD']],
        ['level2_batch', ['BTC-USD', 'ETH-USD']],
        ['status', []],
      ),
    ]);
  });
});

describe('dispose', () => {
  it('reports a negative delta per channel that undoes every subscription', () => {
    send({
      type: 'subscribe',
      product_ids: ['BTC-USD', 'ETH-USD', 'ETH-BTC'],
      channels: ['ticker', 'matches'],
    });
    send({ type: 'subscribe', channels: ['status', { name: 'heartbeat', product_ids: ['ETH-EUR'] }] });
    send({ type: 'unsubscribe', product_ids: ['ETH-BTC'], channels: ['matches'] });
    observer.deltas.length = 0;
    const before = connection.log.length;
    session.dispose();
    expect(observer.deltas).toEqual([
      ['ticker', -3],
      ['matches', -2],
      ['status', -1],
      ['heartbeat', -1],
    ]);
    // The transport drops the topics itself: no detach, no message.
    expect(connection.log.length).toBe(before);
    session.dispose();
    expect(observer.deltas).toHaveLength(4);
  });

  it('reports nothing for a session that never subscribed', () => {
    session.dispose();
    expect(observer.deltas).toEqual([]);
  });

  it('leaves the metrics at zero over any subscribe/unsubscribe history', () => {
    send({
      type: 'subscribe',
      product_ids: ['BTC-USD', 'ETH-USD'],
      channels: ['ticker', 'level2', 'heartbeat'],
    });
    send({ type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['level2'] });
    send({ type: 'unsubscribe', channels: ['heartbeat'] });
    send({ type: 'subscribe', product_ids: ['ETH-BTC'], channels: ['level2', 'status'] });
    session.dispose();
    expect(Object.values(observer.totals()).every((n) => n === 0)).toBe(true);
  });
});
