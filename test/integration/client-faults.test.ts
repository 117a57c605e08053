import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { MatchbookClient } from '../../src/client/client.js';
import { BookReplica } from '../support/book-replica.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { expectBookEqualsRest, nextEvent, recordBooks, sdk } from '../support/sdk.js';
import { TestClient } from '../support/ws-client.js';

let gw: TestGateway;
let proxy: FaultProxy;
beforeAll(async () => {
  gw = await startTestGateway({ SIM_EVENTS_PER_SEC: '50' });
  proxy = await FaultProxy.start(gw.gateway.port);
});
afterAll(async () => {
  await proxy.close();
  await gw.stop();
});

const STALE_MS = 1_000;
const DEAD_MS = 2_000;

function client(): MatchbookClient {
  return new sdk.MatchbookClient({
    url: proxy.url,
    WebSocket,
    staleAfterMs: STALE_MS,
    deadAfterMs: DEAD_MS,
    reconnect: { floorMs: 100, capMs: 2_000 },
  });
}

describe('client SDK through a faulty network (TCP proxy)', () => {
  it('a frozen link is detected by the heartbeat watchdog within its limit, and the client recovers', async () => {
    const c = client();
    c.subscribe('level2', 'BTC-USD');
    const books = recordBooks(c, 'BTC-USD');
    await nextEvent(c, 'synced');
    const stale = nextEvent(c, 'stale');
    const disconnected = nextEvent(c, 'disconnected');
    const frozenAt = performance.now();
    proxy.freeze();
    expect(await stale).toEqual({ product: 'BTC-USD', reason: 'heartbeat' });
    const event = await disconnected;
    const detectedAfter = performance.now() - frozenAt;
    expect(event).toMatchObject({ code: 1006, willReconnect: true });
    expect(event.reason).toMatch(/no message for \d+ ms/);
    // The watchdog looks every staleAfterMs / 4: a dead link is found within that of the limit.
    expect(detectedAfter).toBeGreaterThanOrEqual(DEAD_MS);
    expect(detectedAfter).toBeLessThan(DEAD_MS + STALE_MS);
    await nextEvent(c, 'synced');
    await expectBookEqualsRest(c, books, gw.httpUrl, 'BTC-USD');
    c.close();
  });

  it('a dropped link and one cut mid-frame reconnect, each with a correct book afterwards', async () => {
    const c = client();
    c.subscribe('level2', 'ETH-USD');
    const books = recordBooks(c, 'ETH-USD');
    await nextEvent(c, 'synced');
    for (const fault of ['drop', 'cut'] as const) {
      const disconnected = nextEvent(c, 'disconnected');
      proxy[fault]();
      expect(await disconnected).toMatchObject({ code: 1006, willReconnect: true });
      expect(c.book('ETH-USD')!.synced).toBe(false);
      await nextEvent(c, 'synced');
      await expectBookEqualsRest(c, books, gw.httpUrl, 'ETH-USD');
    }
    c.close();
  });

  it('a minute of random faults with many clients: no book read while synced differs from the gateway book at that sequence', async () => {
    const products = ['BTC-USD', 'SOL-USD'];
    // The reference: a direct connection, its book at every sequence.
    const reference = await TestClient.connect(gw.wsUrl);
    const replicas = new Map(products.map((p) => [p, new BookReplica()]));
    const history = new Map(products.map((p) => [p, new Map<number, string>()]));
    const pending: { product: string; sequence: number; json: string }[] = [];
    let compared = 0;
    const mismatches: string[] = [];
    const compare = (read: { product: string; sequence: number; json: string }) => {
      const expected = history.get(read.product)!.get(read.sequence);
      if (expected === undefined) return false;
      compared++;
      if (expected !== read.json) mismatches.push(`${read.product}@${read.sequence}`);
      return true;
    };
    reference.socket.on('message', (data) => {
      const message = JSON.parse(String(data));
      const replica = replicas.get(message.product_id);
      if (!replica) return;
      replica.apply(message);
      history.get(message.product_id)!.set(replica.sequence, JSON.stringify(replica.levels()));
      for (let i = pending.length - 1; i >= 0; i--) if (compare(pending[i]!)) pending.splice(i, 1);
    });
    reference.subscribe(['level2'], products);
    await reference.nextOfType('snapshot');

    const clients = Array.from({ length: 8 }, () => client());
    const read = (c: MatchbookClient, product: string) => {
      const view = c.book(product)!.view();
      if (!view.synced) return;
      const entry = {
        product,
        sequence: view.sequence,
        json: JSON.stringify({ bids: view.bids, asks: view.asks }),
      };
      if (!compare(entry)) pending.push(entry);
    };
    for (const c of clients) {
      for (const p of products) c.subscribe('level2', p);
      c.on('book', (book) => read(c, book.productId));
    }
    await Promise.all(clients.map((c) => nextEvent(c, 'synced')));

    let seed = 0x5eed;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const faults = { freeze: 0, drop: 0, cut: 0 };
    const until = performance.now() + 60_000;
    while (performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 200 + random() * 1_500));
      const links = proxy.current();
      const link = links[Math.floor(random() * links.length)];
      if (!link) continue;
      const kind = (['freeze', 'drop', 'cut'] as const)[Math.floor(random() * 3)]!;
      faults[kind]++;
      proxy[kind](link);
      // Reads at arbitrary moments, not only on changes.
      for (const c of clients) for (const p of products) read(c, p);
    }
    // Every client ends synced, and every read has been compared.
    for (const c of clients) {
      for (const p of products)
        if (!c.book(p)!.synced) await nextEvent(c, 'synced', (e) => e.product === p, 20_000);
    }
    process.stdout.write(`faults ${JSON.stringify(faults)}, reads compared ${compared}\n`);
    expect(mismatches).toEqual([]);
    expect(pending.filter((p) => p.sequence <= replicas.get(p.product)!.sequence)).toEqual([]);
    expect(faults.freeze + faults.drop + faults.cut).toBeGreaterThan(40);
    expect(compared).toBeGreaterThan(10_000);
    for (const c of clients) c.close();
    await reference.close();
  }, 120_000);
});
