import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { TestClient } from '../support/ws-client.js';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({ SUBSCRIBE_TIMEOUT_MS: '400' });
});
afterAll(() => gw.stop());

const cases: Array<[string, unknown, string, RegExp]> = [
  ['malformed JSON', '{"type":"subscribe",', 'malformed_json', /not valid JSON/],
  ['not an object', '[1,2,3]', 'not_an_object', /expected a JSON object, got an array/],
  [
    'unknown type',
    { type: 'subscribed', channels: ['ticker'] },
    'unknown_type',
    /"subscribed" is not supported/,
  ],
  [
    'no channels',
    { type: 'subscribe', product_ids: ['BTC-USD'] },
    'empty_subscription',
    /No channels provided/,
  ],
  [
    'unknown channel',
    { type: 'subscribe', product_ids: ['BTC-USD'], channels: ['full'] },
    'unknown_channel',
    /^full is not a valid channel$/,
  ],
  [
    'malformed product id',
    { type: 'subscribe', product_ids: ['btc_usd<script>'], channels: ['ticker'] },
    'malformed_product_id',
    /is not a valid product id/,
  ],
  [
    'unknown product',
    { type: 'subscribe', product_ids: ['DOGE-GBP'], channels: ['ticker'] },
    'unknown_product',
    /DOGE-GBP is not a valid product/,
  ],
  [
    'channel without products',
    { type: 'subscribe', channels: ['level2'] },
    'empty_subscription',
    /at least one product ID for channel level2/,
  ],
  [
    'product_ids not a list',
    { type: 'subscribe', product_ids: 'BTC-USD', channels: ['ticker'] },
    'invalid_field',
    /product_ids/,
  ],
];

describe('bad client input gets a specific error and the connection keeps working', () => {
  it.each(cases)('%s', async (_name, input, code, reason) => {
    const client = await TestClient.connect(gw.wsUrl);
    client.send(input);
    const error = await client.nextOfType('error');
    expect(error.code).toBe(code);
    expect(error.reason).toMatch(reason);
    expect(typeof error.message).toBe('string');
    client.subscribe(['heartbeat'], ['BTC-USD']);
    expect(await client.nextOfType('subscriptions')).toEqual({
      type: 'subscriptions',
      channels: [{ name: 'heartbeat', product_ids: ['BTC-USD'] }],
    });
    expect(await gw.metric('ws_client_errors_total', `reason="${code}"`)).toBeGreaterThanOrEqual(1);
    await client.close();
  });

  it('a binary frame gets binary_frame and the connection stays open', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await client.nextOfType('error')).code).toBe('binary_frame');
    client.subscribe(['ticker'], ['BTC-USD']);
    await client.nextOfType('subscriptions');
    await client.close();
  });

  it('a request mixing valid and invalid products errors on the bad part and subscribes the rest', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['matches'], ['BTC-USD', 'XRP-USD']);
    expect((await client.nextOfType('error')).code).toBe('unknown_product');
    expect(await client.nextOfType('subscriptions')).toEqual({
      type: 'subscriptions',
      channels: [{ name: 'matches', product_ids: ['BTC-USD'] }],
    });
    await client.close();
  });
});

describe('client text quoted back in a reason is capped', () => {
  it('a 4,000-character type, channel or product id is quoted cut to 64 characters, ending in "..."', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    const long = 'Q'.repeat(4_000);
    const cut = `${'Q'.repeat(61)}...`;
    client.send({ type: long });
    expect((await client.nextOfType('error')).reason).toBe(
      `type "${cut.slice(1)} is not supported: expected "subscribe" or "unsubscribe"`,
    );
    client.send({ type: 'subscribe', channels: [long] });
    expect((await client.nextOfType('error')).reason).toBe(`${cut} is not a valid channel`);
    client.send({ type: 'subscribe', product_ids: [long], channels: ['ticker'] });
    expect((await client.nextOfType('error')).reason).toBe(`"${cut.slice(1)} is not a valid product id`);
    await client.close();
  });
});

describe('subscribe deadline', () => {
  it('closes a connection that has not subscribed in time with 4001 and says why', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    const closed = await client.closed;
    expect(closed.code).toBe(4001);
    expect(client.messages).toEqual([expect.objectContaining({ type: 'error', code: 'subscribe_timeout' })]);
    expect(await gw.metric('ws_disconnections_total', 'reason="subscribe_timeout"')).toBeGreaterThanOrEqual(
      1,
    );
  });

  it('keeps a connection that subscribed in time', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['heartbeat'], ['BTC-USD']);
    await client.nextOfType('subscriptions');
    // Two heartbeats span more than twice the 400 ms deadline.
    await client.nextOfType('heartbeat');
    await client.nextOfType('heartbeat');
    expect(client.socket.readyState).toBe(client.socket.OPEN);
    await client.close();
  });
});
