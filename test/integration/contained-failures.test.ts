import { afterEach, describe, expect, it } from 'vitest';
import type { Transport as TransportType } from '../../src/server/transport.js';
import { startTransport } from '../support/built-transport.js';
import { readMetric } from '../support/gateway.js';
import { TestClient } from '../support/ws-client.js';

let transport: TransportType | undefined;
afterEach(() => {
  transport?.close();
  transport = undefined;
});

describe('a failing handler is contained at the transport boundary', () => {
  it('closes only the connection concerned with 1011; the process and other clients carry on', async () => {
    const started = await startTransport({
      market: {
        hasProduct: (id) => id === 'BTC-USD' || id === 'ETH-USD',
        requestInitial: (channel, productId, deliver) => {
          // A bug in one path: subscribing ETH-USD throws.
          if (productId === 'ETH-USD') throw new Error('injected failure');
          deliver([JSON.stringify({ type: 'snapshot', product_id: productId, channel })]);
        },
        http: () => {
          throw new Error('injected HTTP failure');
        },
      },
    });
    transport = started.transport;
    const { port } = started;
    const url = `ws://127.0.0.1:${port}/`;
    const good = await TestClient.connect(url);
    good.subscribe(['level2'], ['BTC-USD']);
    await good.nextOfType('snapshot');
    const victim = await TestClient.connect(url);
    victim.subscribe(['level2'], ['ETH-USD']);
    expect((await victim.closed).code).toBe(1011);
    const products = await fetch(`http://127.0.0.1:${port}/products`);
    expect(products.status).toBe(503);
    // The other client is untouched and the server still serves.
    good.subscribe(['level2'], ['BTC-USD']);
    await good.nextOfType('subscriptions');
    expect(good.socket.readyState).toBe(good.socket.OPEN);
    const text = await started.metrics();
    expect(readMetric(text, 'ws_internal_errors_total', 'where="message"')).toBe(1);
    expect(readMetric(text, 'ws_internal_errors_total', 'where="http"')).toBe(1);
    await good.close();
  });
});
