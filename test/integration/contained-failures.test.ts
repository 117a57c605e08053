import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import type { Transport as TransportType } from '../../src/server/transport.js';
import { RELAXED_LIMITS, readMetric } from '../support/gateway.js';
import { TestClient } from '../support/ws-client.js';

// The built transport, as the gateway runs it.
const built: typeof import('../../src/server/transport.js') = await import(
  new URL('../../dist/src/server/transport.js', import.meta.url).href
);
const { nativeUws }: typeof import('../../src/server/uws.js') = await import(
  new URL('../../dist/src/server/uws.js', import.meta.url).href
);
const { createMetrics }: typeof import('../../src/metrics/metrics.js') = await import(
  new URL('../../dist/src/metrics/metrics.js', import.meta.url).href
);
const { ConnectionAdmission }: typeof import('../../src/limits/admission.js') = await import(
  new URL('../../dist/src/limits/admission.js', import.meta.url).href
);
const { SharedCounterTable }: typeof import('../../src/limits/shared-counters.js') = await import(
  new URL('../../dist/src/limits/shared-counters.js', import.meta.url).href
);

let transport: TransportType | undefined;
afterEach(() => {
  transport?.close();
  transport = undefined;
});

describe('a failing handler is contained at the transport boundary', () => {
  it('closes only the connection concerned with 1011; the process and other clients carry on', async () => {
    const result = loadConfig({ ...RELAXED_LIMITS, HOST: '127.0.0.1', PORT: '0' });
    if (!result.ok) throw new Error(result.errors.join('\n'));
    const config = result.config;
    const metrics = createMetrics({ processMetrics: false });
    transport = new built.Transport(
      {
        host: config.host,
        port: 0,
        maxPayloadBytes: config.maxPayloadBytes,
        idleTimeoutSeconds: config.idleTimeoutSeconds,
        subscribeTimeoutMs: config.subscribeTimeoutMs,
        flowControl: config.flowControl,
        limits: config.limits,
      },
      {
        uws: nativeUws(),
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
          metrics: async () => ({ status: 200, body: await metrics.registry.metrics() }),
        },
        metrics,
        logger: pino({ level: 'silent' }),
        healthy: () => true,
        admission: new ConnectionAdmission(SharedCounterTable.create(1024, 1), 0, 100, 100),
        gate: { admit: async () => ({ allowed: true }), release: () => {} },
      },
    );
    const port = await transport.listen();
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
    const text = await metrics.registry.metrics();
    expect(readMetric(text, 'ws_internal_errors_total', 'where="message"')).toBe(1);
    expect(readMetric(text, 'ws_internal_errors_total', 'where="http"')).toBe(1);
    await good.close();
  });
});
