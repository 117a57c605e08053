import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMetric, startTestGateway, type TestGateway } from '../support/gateway.js';
import { TestClient } from '../support/ws-client.js';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(() => gw.stop());

describe('REST endpoints in the Coinbase Exchange shapes', () => {
  it('GET /products and /products/{id}', async () => {
    const all = await gw.getJson<Record<string, unknown>[]>('/products');
    expect(all.status).toBe(200);
    expect(all.body.map((p) => p.id)).toEqual(['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC']);
    const one = await gw.getJson('/products/ETH-BTC');
    expect(one.body).toMatchObject({
      id: 'ETH-BTC',
      base_currency: 'ETH',
      quote_currency: 'BTC',
      quote_increment: '0.00001',
      base_increment: '0.00000001',
      display_name: 'ETH/BTC',
      status: 'online',
      auction_mode: false,
    });
  });

  it('GET /products/{id}/book level 1 and 2 with [price, size, num_orders] and sequence', async () => {
    const level1 = await gw.getJson<{ bids: unknown[]; asks: unknown[]; sequence: number }>(
      '/products/BTC-USD/book',
    );
    expect(level1.body.bids).toHaveLength(1);
    expect(level1.body.asks).toHaveLength(1);
    expect(level1.body.bids[0]).toEqual([
      expect.stringMatching(/^\d+\.\d{2}$/),
      expect.stringMatching(/^\d+\.\d{8}$/),
      expect.any(Number),
    ]);
    const level2 = await gw.getJson<{ bids: unknown[]; sequence: number; time: string }>(
      '/products/BTC-USD/book?level=2',
    );
    expect(level2.body.bids.length).toBeGreaterThan(1);
    expect(level2.body.sequence).toBeGreaterThanOrEqual(level1.body.sequence);
    expect(level2.body.time).toMatch(/Z$/);
    const bad = await gw.getJson('/products/BTC-USD/book?level=9');
    expect(bad.status).toBe(400);
  });

  it('GET /products/{id}/ticker', async () => {
    const ticker = await gw.getJson<Record<string, unknown>>('/products/SOL-USD/ticker');
    expect(ticker.status).toBe(200);
    expect(Object.keys(ticker.body).sort()).toEqual([
      'ask',
      'bid',
      'price',
      'size',
      'time',
      'trade_id',
      'volume',
    ]);
    expect(Number(ticker.body.bid)).toBeLessThan(Number(ticker.body.ask));
  });

  it('unknown products and paths are 404 with a JSON message', async () => {
    for (const path of [
      '/products/FOO-BAR',
      '/products/FOO-BAR/book?level=2',
      '/products/BTC-USD/candles',
      '/nope',
    ]) {
      const reply = await gw.getJson(path);
      expect(reply.status, path).toBe(404);
      expect(reply.body).toEqual({ message: 'NotFound' });
    }
  });

  it('/healthz and /readyz', async () => {
    expect(await gw.getJson('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await gw.getJson('/readyz')).toEqual({ status: 200, body: { status: 'ready' } });
  });
});

describe('/metrics', () => {
  it('ws_active_connections rises and falls with clients', async () => {
    const before = (await gw.metric('ws_active_connections')) ?? Number.NaN;
    const clients = await Promise.all(Array.from({ length: 5 }, () => TestClient.connect(gw.wsUrl)));
    expect(await gw.metric('ws_active_connections')).toBe(before + 5);
    await Promise.all(clients.slice(0, 3).map((c) => c.close()));
    expect(await gw.metric('ws_active_connections')).toBe(before + 2);
    await Promise.all(clients.slice(3).map((c) => c.close()));
    expect(await gw.metric('ws_active_connections')).toBe(before);
  });

  it('exposes every documented metric with low-cardinality labels', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['level2', 'ticker'], ['BTC-USD']);
    await client.nextOfType('l2update');
    const text = await (await fetch(`${gw.httpUrl}/metrics`)).text();
    for (const name of [
      'ws_active_connections',
      'ws_message_queue_size',
      'ws_connections_total',
      'ws_disconnections_total',
      'ws_messages_sent_total',
      'ws_subscriptions',
      'ws_feed_events_total',
      'ws_feed_invalid_events_total',
      'ws_feed_to_send_latency_seconds',
      'ws_open_descriptors',
      'ws_listen_paused',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    expect(text).toMatch(/ws_subscriptions\{channel="level2"\} 1/);
    expect(text).toMatch(/ws_messages_sent_total\{channel="level2"\} \d+/);
    expect(text).toMatch(/ws_feed_to_send_latency_seconds_count\{channel="level2"\} \d+/);
    expect(text).not.toMatch(/127\.0\.0\.1/);
    await client.close();
    expect(await gw.metric('ws_subscriptions', 'channel="level2"')).toBe(0);
  });
});

describe('ADMIN_PORT', () => {
  const get = async (base: string, path: string, method = 'GET') => {
    const response = await fetch(`${base}${path}`, { method });
    return {
      status: response.status,
      type: response.headers.get('content-type'),
      body: await response.text(),
    };
  };

  it('answers /healthz, /readyz and /metrics as PORT does, and nothing else', async () => {
    expect(gw.gateway.adminPort).not.toBe(gw.gateway.port);
    for (const path of ['/healthz', '/readyz'])
      expect(await get(gw.adminUrl, path)).toEqual(await get(gw.httpUrl, path));
    const client = await TestClient.connect(gw.wsUrl);
    const [admin, main] = [await get(gw.adminUrl, '/metrics'), await get(gw.httpUrl, '/metrics')];
    expect(admin.status).toBe(200);
    expect(admin.type).toBe(main.type);
    expect(readMetric(admin.body, 'ws_active_connections')).toBe(
      readMetric(main.body, 'ws_active_connections'),
    );
    const names = (text: string) => text.split('\n').filter((line) => line.startsWith('# TYPE '));
    expect(names(admin.body)).toEqual(names(main.body));
    await client.close();
    expect(await get(gw.adminUrl, '/products')).toEqual({
      status: 404,
      type: 'application/json',
      body: '{"message":"NotFound"}',
    });
    expect((await get(gw.adminUrl, '/healthz', 'POST')).status).toBe(404);
  });

  it('stays open while the gateway drains, and says so on /readyz', async () => {
    // Spread over a minute, the drain closes one client per 50 ms slice: it is still under way when
    // the first client has been closed, and the forced close ends it.
    const draining = await startTestGateway({ DRAIN_SPREAD_MS: '60000' });
    const clients = await Promise.all(Array.from({ length: 40 }, () => TestClient.connect(draining.wsUrl)));
    const drained = draining.gateway.drain();
    await Promise.race(clients.map((c) => c.closed));
    expect(await get(draining.adminUrl, '/readyz')).toEqual({
      status: 503,
      type: 'application/json',
      body: '{"status":"not_ready","reason":"draining"}',
    });
    expect((await get(draining.adminUrl, '/healthz')).status).toBe(200);
    await draining.gateway.close();
    await drained;
    await Promise.all(clients.map((c) => c.closed));
    await expect(fetch(`${draining.adminUrl}/healthz`)).rejects.toThrow();
  });
});
