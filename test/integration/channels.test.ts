import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { TestClient } from '../support/ws-client.js';

const ISO_MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const DECIMAL = /^\d+\.\d+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({ SIM_EVENTS_PER_SEC: '200', STATUS_INTERVAL_MS: '1000' });
});
afterAll(() => gw.stop());

describe('channels (real uWS server, real WebSocket clients)', () => {
  it('replies with the whole subscription set, root product_ids added to every channel', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.send({
      type: 'subscribe',
      product_ids: ['ETH-USD'],
      channels: ['heartbeat', { name: 'ticker', product_ids: ['BTC-USD'] }],
      signature: 'c2lnbmF0dXJl',
      key: 'key',
      passphrase: 'pass',
      timestamp: '1700000000.123',
    });
    const reply = await client.nextOfType('subscriptions');
    expect(reply).toEqual({
      type: 'subscriptions',
      channels: [
        { name: 'heartbeat', product_ids: ['ETH-USD'] },
        { name: 'ticker', product_ids: ['BTC-USD', 'ETH-USD'] },
      ],
    });
    client.send({ type: 'unsubscribe', channels: ['heartbeat'] });
    expect(await client.nextOfType('subscriptions')).toEqual({
      type: 'subscriptions',
      channels: [{ name: 'ticker', product_ids: ['BTC-USD', 'ETH-USD'] }],
    });
    client.send({ type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['ticker'] });
    expect(await client.nextOfType('subscriptions')).toEqual({
      type: 'subscriptions',
      channels: [{ name: 'ticker', product_ids: ['ETH-USD'] }],
    });
    await client.close();
  });

  it('heartbeat: every second per product, with sequence, last_trade_id, product_id, time', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['heartbeat'], ['BTC-USD', 'ETH-USD']);
    const first = await client.nextOfType('heartbeat');
    expect(Object.keys(first).sort()).toEqual(['last_trade_id', 'product_id', 'sequence', 'time', 'type']);
    expect(first.sequence).toEqual(expect.any(Number));
    expect(first.last_trade_id).toEqual(expect.any(Number));
    expect(first.time).toMatch(ISO_MICROS);
    const again = await client.next((m) => m.type === 'heartbeat' && m.product_id === first.product_id);
    const gapMs = Date.parse(again.time as string) - Date.parse(first.time as string);
    expect(gapMs).toBeGreaterThan(900);
    expect(gapMs).toBeLessThan(1500);
    expect(again.sequence as number).toBeGreaterThan(first.sequence as number);
    await client.close();
  });

  it('status: products and currencies on subscribe, then at the interval', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe([{ name: 'status' }]);
    expect(await client.nextOfType('subscriptions')).toEqual({
      type: 'subscriptions',
      channels: [{ name: 'status', product_ids: [] }],
    });
    const status = await client.nextOfType('status');
    const products = status.products as Record<string, unknown>[];
    expect(products.map((p) => p.id)).toEqual(['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC']);
    expect(products[0]).toMatchObject({
      id: 'BTC-USD',
      base_currency: 'BTC',
      quote_currency: 'USD',
      base_increment: '0.00000001',
      quote_increment: '0.01',
      status: 'online',
      status_message: null,
      post_only: false,
      limit_only: false,
      cancel_only: false,
      fx_stablecoin: false,
    });
    const currencies = (status.currencies as Record<string, unknown>[]).map((c) => c.id);
    expect(currencies.sort()).toEqual(['BTC', 'ETH', 'SOL', 'USD']);
    await client.nextOfType('status', 3_000);
    await client.close();
  });

  it('ticker: one per trade with the feed fields and types, and the last ticker on subscribe', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['ticker'], ['BTC-USD']);
    const ticker = await client.nextOfType('ticker');
    for (const field of [
      'price',
      'open_24h',
      'volume_24h',
      'low_24h',
      'high_24h',
      'volume_30d',
      'last_size',
    ]) {
      expect(ticker[field], field).toMatch(DECIMAL);
    }
    for (const field of ['best_bid', 'best_bid_size', 'best_ask', 'best_ask_size']) {
      expect(ticker[field], field).toMatch(DECIMAL);
    }
    expect(ticker).toMatchObject({ type: 'ticker', product_id: 'BTC-USD' });
    expect(['buy', 'sell']).toContain(ticker.side);
    expect(ticker.sequence).toEqual(expect.any(Number));
    expect(ticker.trade_id).toEqual(expect.any(Number));
    expect(ticker.time).toMatch(ISO_MICROS);
    expect(Number(ticker.best_bid)).toBeLessThan(Number(ticker.best_ask));
    expect(Number(ticker.low_24h)).toBeLessThanOrEqual(Number(ticker.price));
    expect(Number(ticker.high_24h)).toBeGreaterThanOrEqual(Number(ticker.price));
    const next = await client.nextOfType('ticker');
    expect(next.trade_id as number).toBeGreaterThan(ticker.trade_id as number);
    await client.close();
  });

  it('matches: last_match first, then match per trade with consecutive trade ids', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['matches'], ['ETH-USD']);
    const first = await client.next((m) => m.type === 'last_match' || m.type === 'match');
    expect(first.type).toBe('last_match');
    expect(Object.keys(first).sort()).toEqual(
      [
        'maker_order_id',
        'price',
        'product_id',
        'sequence',
        'side',
        'size',
        'taker_order_id',
        'time',
        'trade_id',
        'type',
      ].sort(),
    );
    expect(first.maker_order_id).toMatch(UUID);
    expect(first.taker_order_id).toMatch(UUID);
    expect(first.price).toMatch(DECIMAL);
    expect(first.size).toMatch(DECIMAL);
    let previous = first.trade_id as number;
    for (let i = 0; i < 5; i++) {
      const match = await client.nextOfType('match');
      expect(match.product_id).toBe('ETH-USD');
      expect(match.trade_id).toBe(previous + 1);
      previous = match.trade_id as number;
    }
    expect(client.messages.filter((m) => m.type === 'last_match')).toHaveLength(1);
    await client.close();
  });

  it('ticker_batch: the last ticker on subscribe, then batched tickers of type ticker', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['ticker_1000'], ['SOL-USD']);
    expect(await client.nextOfType('subscriptions')).toEqual({
      type: 'subscriptions',
      channels: [{ name: 'ticker_batch', product_ids: ['SOL-USD'] }],
    });
    // The subscription's own initial ticker, then the next batch flush (within 5 s).
    await client.nextOfType('ticker');
    const batched = await client.nextOfType('ticker', 6_000);
    expect(batched.product_id).toBe('SOL-USD');
    await client.close();
  }, 15_000);

  it('level2_batch: at most one l2update per product per 50 ms, each level once', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['level2_batch'], ['BTC-USD']);
    await client.nextOfType('snapshot');
    const updates = [];
    for (let i = 0; i < 10; i++) updates.push(await client.nextOfType('l2update'));
    for (const update of updates) {
      const keys = (update.changes as string[][]).map(([side, price]) => `${side}:${price}`);
      expect(new Set(keys).size).toBe(keys.length);
    }
    const arrivals = updates.map((u) => client.arrivals[client.messages.indexOf(u)]!);
    // Flushes run on a 50 ms interval; allow for timer and loopback jitter.
    for (let i = 1; i < arrivals.length; i++)
      expect(arrivals[i]! - arrivals[i - 1]!).toBeGreaterThanOrEqual(35);
    await client.close();
  });
});
