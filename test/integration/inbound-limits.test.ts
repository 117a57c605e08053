import { afterEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { TestClient } from '../support/ws-client.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

describe('inbound limits per connection', () => {
  it('subscribe requests past WS_SUBSCRIBE_RATE/BURST get rate_limited and are not applied; the connection stays', async () => {
    gw = await startTestGateway({ WS_SUBSCRIBE_RATE: '2', WS_SUBSCRIBE_BURST: '4' });
    const client = await TestClient.connect(gw.wsUrl);
    for (let i = 0; i < 8; i++) client.subscribe(['heartbeat'], ['BTC-USD']);
    const replies = [];
    for (let i = 0; i < 8; i++)
      replies.push(await client.next((m) => m.type === 'subscriptions' || m.type === 'error'));
    expect(replies.filter((m) => m.type === 'subscriptions')).toHaveLength(4);
    const limited = replies.filter((m) => m.type === 'error');
    expect(limited).toHaveLength(4);
    for (const e of limited)
      expect(e).toMatchObject({ code: 'rate_limited', message: 'Too many subscribe requests' });
    expect(client.socket.readyState).toBe(client.socket.OPEN);
    expect(await gw.metric('ws_client_errors_total', 'reason="rate_limited"')).toBe(4);
    await client.close();
  });

  it('a sustained flood gets ErrSlowRead and close 4003', async () => {
    gw = await startTestGateway({
      WS_MESSAGE_RATE: '20',
      WS_MESSAGE_BURST: '30',
      WS_SUBSCRIBE_RATE: '1000',
      WS_SUBSCRIBE_BURST: '1000',
    });
    const client = await TestClient.connect(gw.wsUrl);
    for (let i = 0; i < 200; i++) client.send('{"type":"subscribe"}');
    expect((await client.closed).code).toBe(4003);
    expect(client.messages.at(-1)).toMatchObject({ type: 'error', message: 'ErrSlowRead', code: 'flood' });
    expect(await gw.metric('ws_disconnections_total', 'reason="flood"')).toBe(1);
  });

  it('a frame over WS_MAX_PAYLOAD_BYTES gets "Message too big" and close 1009', async () => {
    gw = await startTestGateway({ WS_MAX_PAYLOAD_BYTES: '1024' });
    const client = await TestClient.connect(gw.wsUrl);
    client.send(
      JSON.stringify({
        type: 'subscribe',
        channels: ['heartbeat'],
        product_ids: ['BTC-USD'],
        pad: 'x'.repeat(2000),
      }),
    );
    expect((await client.closed).code).toBe(1009);
    expect(client.messages.at(-1)).toMatchObject({
      type: 'error',
      message: 'Message too big',
      code: 'message_too_big',
    });
    // Exactly at the limit is fine.
    const ok = await TestClient.connect(gw.wsUrl);
    const request = { type: 'subscribe', channels: ['heartbeat'], product_ids: ['BTC-USD'], pad: '' };
    request.pad = 'x'.repeat(1024 - JSON.stringify(request).length);
    ok.send(JSON.stringify(request));
    await ok.nextOfType('subscriptions');
    await ok.close();
  });

  it('too many products in a request, and too many subscriptions on a connection, are refused whole', async () => {
    gw = await startTestGateway({ WS_MAX_PRODUCTS_PER_REQUEST: '3', WS_MAX_SUBSCRIPTIONS: '5' });
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['ticker'], ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC']);
    expect(await client.nextOfType('error')).toMatchObject({ code: 'too_many_products' });
    client.subscribe(['ticker', 'matches'], ['BTC-USD', 'ETH-USD']);
    expect((await client.nextOfType('subscriptions')).channels).toHaveLength(2);
    client.subscribe(['heartbeat', 'level2'], ['SOL-USD']);
    expect(await client.nextOfType('error')).toMatchObject({ code: 'too_many_subscriptions' });
    // Nothing of the refused request was applied; one more still fits.
    client.subscribe(['heartbeat'], ['SOL-USD']);
    expect((await client.nextOfType('subscriptions')).channels).toEqual([
      { name: 'ticker', product_ids: ['BTC-USD', 'ETH-USD'] },
      { name: 'matches', product_ids: ['BTC-USD', 'ETH-USD'] },
      { name: 'heartbeat', product_ids: ['SOL-USD'] },
    ]);
    await client.close();
  });
});
