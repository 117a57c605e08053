import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { StaleReason } from '../../src/client/order-book.js';
import { spawnGateway } from '../support/process.js';
import { expectBookEqualsRest, nextEvent, recordBooks, sdk, until } from '../support/sdk.js';

describe('client SDK across a gateway restart', () => {
  it('SIGTERM, then the gateway started again on the same port: the client reconnects and resubscribes by itself; its books are stale in between and equal the REST book afterwards', async () => {
    const first = await spawnGateway({ SIM_EVENTS_PER_SEC: '100' });
    const port = first.port;
    const url = `ws://127.0.0.1:${port}/`;
    const client = new sdk.MatchbookClient({ url, WebSocket, reconnect: { floorMs: 200, capMs: 1_000 } });
    const products = ['BTC-USD', 'ETH-BTC'];
    for (const p of products) client.subscribe('level2', p);
    const ticker = client.subscribe('ticker', 'SOL-USD');
    const books = new Map(products.map((p) => [p, recordBooks(client, p)]));
    await Promise.all(products.map((p) => nextEvent(client, 'synced', (e) => e.product === p)));
    await expectBookEqualsRest(client, books.get('BTC-USD')!, `http://127.0.0.1:${port}`, 'BTC-USD');

    const stale: { product: string; reason: StaleReason }[] = [];
    client.on('stale', (e) => stale.push(e));
    const disconnected = nextEvent(client, 'disconnected');
    first.child.kill('SIGTERM');
    expect(await disconnected).toMatchObject({ code: 1001, willReconnect: true });
    expect(await first.exited()).toEqual({ code: 0, signal: null });
    expect(stale).toEqual(products.map((product) => ({ product, reason: 'disconnected' })));
    for (const p of products)
      expect(client.book(p)!.view()).toEqual({ synced: false, reason: 'disconnected' });
    expect(client.state).toBe('reconnecting');

    const second = await spawnGateway({ SIM_EVENTS_PER_SEC: '100', PORT: String(port) });
    // The client may be back before the new process's "listening" line has been read.
    await until(client, () => client.state === 'open' && products.every((p) => client.book(p)!.synced));
    for (const p of products)
      await expectBookEqualsRest(client, books.get(p)!, `http://127.0.0.1:${port}`, p);
    // The ticker subscription came back too.
    const iterator = ticker[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ type: 'ticker', product_id: 'SOL-USD' });
    client.close();
    second.child.kill('SIGTERM');
    expect((await second.exited()).code).toBe(0);
  }, 60_000);
});
