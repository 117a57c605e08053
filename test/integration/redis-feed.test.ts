import { once } from 'node:events';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type ProductSpec, productFromId } from '../../src/config/products.js';
import { redisKeys } from '../../src/feeds/redis/contract.js';
import { type Publisher, startPublisher } from '../../src/feeds/redis/publisher.js';
import { BookReplica } from '../support/book-replica.js';
import { startTestGateway, type TestGateway, waitForMetric } from '../support/gateway.js';
import { type RedisProcess, startRedis } from '../support/redis-server.js';
import { type Message, TestClient } from '../support/ws-client.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const specs = PRODUCTS.map((id) => productFromId(id) as ProductSpec);
const quiet = pino({ level: 'silent' });

let redis: RedisProcess | undefined;
let publisher: Publisher | undefined;
const gateways: TestGateway[] = [];
afterEach(async () => {
  for (const gw of gateways.splice(0)) await gw.stop();
  await publisher?.stop();
  await redis?.stop();
  publisher = undefined;
  redis = undefined;
});

async function publish(url: string, eventsPerSecond = 300): Promise<Publisher> {
  return startPublisher(
    {
      redis: { url: url, password: undefined },
      products: specs,
      eventsPerSecond,
      seed: 5,
      maxLen: 5_000,
      snapshotIntervalMs: 200,
    },
    quiet,
  );
}

async function gatewayOn(url: string, env: Record<string, string> = {}): Promise<TestGateway> {
  const gw = await startTestGateway({
    FEED_SOURCE: 'redis',
    REDIS_URL: url,
    PRODUCTS: PRODUCTS.join(','),
    ...env,
  });
  gateways.push(gw);
  return gw;
}

/** Waits until the client's book reaches the publisher's current sequence, then compares the books. */
async function expectPublisherBook(
  client: TestClient,
  replica: BookReplica,
  productId: string,
): Promise<void> {
  const book = publisher!.books().find((b) => b.product_id === productId)!;
  await client.next((m) => {
    if (m.product_id === productId) replica.apply(m);
    return replica.sequence >= book.sequence;
  }, 10_000);
  expect(replica.history.get(book.sequence), `${productId} at ${book.sequence}`).toEqual({
    bids: book.bids.map(([p, s]) => [p, s]),
    asks: book.asks.map(([p, s]) => [p, s]),
  });
}

async function readyStatus(gw: TestGateway): Promise<number> {
  return (await fetch(`${gw.httpUrl}/readyz`)).status;
}

async function waitForReady(gw: TestGateway, status: number): Promise<void> {
  const deadline = performance.now() + 10_000;
  while ((await readyStatus(gw)) !== status) {
    if (performance.now() > deadline) throw new Error(`/readyz never became ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('FEED_SOURCE=redis (real redis-server)', () => {
  it('a client book equals the publisher book at the same sequence', async () => {
    redis = await startRedis();
    publisher = await publish(redis.url);
    const gw = await gatewayOn(redis.url);
    await waitForReady(gw, 200);
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['level2', 'matches'], PRODUCTS);
    const replica = new BookReplica();
    replica.apply(await client.next((m) => m.type === 'snapshot' && m.product_id === 'BTC-USD'));
    for (let i = 0; i < 3; i++) await expectPublisherBook(client, replica, 'BTC-USD');
    await client.close();
  });

  it('Redis down at startup: the gateway starts, /readyz is 503 with the reason, and it connects when Redis comes up', async () => {
    redis = await startRedis();
    const url = redis.url;
    await redis.kill();
    const gw = await gatewayOn(url);
    const notReady = await fetch(`${gw.httpUrl}/readyz`);
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as { reason: string }).reason).toMatch(/redis/);
    expect(await gw.metric('ws_feed_stale')).toBe(1);
    const status = await TestClient.connect(gw.wsUrl);
    status.subscribe([{ name: 'status' }]);
    expect(isStale(await status.nextOfType('status'))).toBe(true);
    await status.close();
    await redis.restart();
    publisher = await publish(url);
    await waitForReady(gw, 200);
    expect(await gw.metric('ws_feed_stale')).toBe(0);
  });

  it('Redis down at startup, with worker threads: the very first client already hears the feed is stale', async () => {
    redis = await startRedis();
    const url = redis.url;
    await redis.kill();
    // The gateway's port is known in advance so a client can try it while the workers are still starting.
    const port = await freePort();
    const starting = gatewayOn(url, { PORT: String(port), WS_WORKER_THREADS: '3' });
    let started = false;
    void starting.then(() => {
      started = true;
    });
    // The first listening worker is the only signal a client gets: try the port until it accepts.
    let first: TestClient | undefined;
    while (!first && !started) {
      first = await TestClient.connect(`ws://127.0.0.1:${port}/`).catch(() => undefined);
    }
    expect(started, 'a client got in while the workers were still starting').toBe(false);
    first!.subscribe([{ name: 'status' }]);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    const status = await first!.nextOfType('status');
    expect(health.status).toBe(200);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { reason: string }).reason).toBe('redis: not connected to Redis yet');
    expect((status.products as { status_message: string | null }[])[0]?.status_message).toBe(
      'feed stale: not connected to Redis yet',
    );
    await first!.close();
    await starting;
  });

  it('a Redis restart mid-stream: clients keep their connections, get a fresh snapshot and an exact book; stale is signalled and cleared', async () => {
    redis = await startRedis();
    publisher = await publish(redis.url);
    const gw = await gatewayOn(redis.url);
    await waitForReady(gw, 200);
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['level2', { name: 'status' }], ['BTC-USD']);
    const replica = new BookReplica();
    replica.apply(await client.next((m) => m.type === 'snapshot'));
    await expectPublisherBook(client, replica, 'BTC-USD');

    await redis.kill();
    const stale = await client.next((m) => m.type === 'status' && isStale(m));
    expect((stale.products as { status_message: string }[])[0]!.status_message).toMatch(/^feed stale/);
    await waitForMetric(gw, 'ws_feed_stale', '', (v) => v === 1);
    expect(await readyStatus(gw)).toBe(503);

    await redis.restart();
    await client.next((m) => m.type === 'status' && !isStale(m), 15_000);
    await waitForReady(gw, 200);
    // The restart lost events: the gateway resynchronises and tells level2 clients with a snapshot.
    await client.next((m) => {
      replica.apply(m);
      return m.type === 'snapshot';
    }, 15_000);
    await expectPublisherBook(client, replica, 'BTC-USD');
    expect(client.socket.readyState).toBe(client.socket.OPEN);
    expect(await gw.metric('ws_feed_stale')).toBe(0);
    await client.close();
  }, 40_000);

  it('an injected sequence gap is detected, the product resynchronised, and the book stays exact', async () => {
    redis = await startRedis();
    publisher = await publish(redis.url);
    const gw = await gatewayOn(redis.url);
    await waitForReady(gw, 200);
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['level2'], ['ETH-USD']);
    const replica = new BookReplica();
    replica.apply(await client.nextOfType('snapshot'));
    await expectPublisherBook(client, replica, 'ETH-USD');

    const { Redis } = await import('ioredis');
    const raw = new Redis(redis.url, { protocol: 2 });
    const current = publisher.books().find((b) => b.product_id === 'ETH-USD')!;
    // The malformed entry goes first: after the gap the gateway resumes from the snapshot key's
    // stream id, which may already be past anything added after the gap entry.
    await raw.xadd(redisKeys.events('ETH-USD'), '*', 'e', '{not json');
    await raw.xadd(
      redisKeys.events('ETH-USD'),
      '*',
      'e',
      JSON.stringify({
        epoch: publisher.epoch,
        type: 'book',
        product_id: 'ETH-USD',
        sequence: current.sequence + 100_000,
        time: current.time,
        changes: [['buy', '1.00', '1.00000000', 1]],
      }),
    );
    raw.disconnect();
    await waitForMetric(gw, 'ws_feed_invalid_events_total', 'reason="sequence_gap"', (v) => v >= 1);
    await waitForMetric(gw, 'ws_feed_invalid_events_total', 'reason="malformed"', (v) => v >= 1);
    await client.next((m) => {
      replica.apply(m);
      return m.type === 'snapshot';
    }, 15_000);
    await expectPublisherBook(client, replica, 'ETH-USD');
    expect(await gw.metric('ws_feed_resyncs_total', 'reason="gap"')).toBeGreaterThanOrEqual(1);
    expect(await gw.metric('ws_feed_resyncs_total', 'reason="incarnation"')).toBeUndefined();
    await client.close();
  }, 30_000);

  it('a stream rewound while the reader was away (a promoted replica behind it, with a clock behind the old primary) is read on from where the snapshot written after the switch stands', async () => {
    redis = await startRedis();
    const { Redis } = await import('ioredis');
    const writer = new Redis(redis.url, { protocol: 2 });
    const id = 'BTC-USD';
    const epoch = '1'.padStart(21, '0');
    const time = '2026-12-01T00:00:00.000000Z';
    const events = redisKeys.events(id);
    const book = (sequence: number) =>
      JSON.stringify({
        epoch,
        type: 'book',
        product_id: id,
        sequence,
        time,
        changes: [['buy', '99.00', `${sequence}.00000000`, 1]],
      });
    const writeSnapshot = (sequence: number, streamId: string) =>
      writer.set(
        redisKeys.snapshot(id),
        JSON.stringify({
          stream_id: streamId,
          event: {
            epoch,
            type: 'snapshot',
            product_id: id,
            sequence,
            time,
            bids: [['99.00', `${sequence}.00000000`, 1]],
            asks: [['101.00', '1.00000000', 1]],
          },
        }),
      );
    // The old primary's clock is an hour ahead: its entries' ids are in this server's future.
    const ahead = Date.now() + 3_600_000;
    await writeSnapshot(1, '0-0');
    for (let sequence = 2; sequence <= 5; sequence++)
      await writer.xadd(events, `${ahead}-${sequence}`, 'e', book(sequence));
    for (let sequence = 6; sequence <= 10; sequence++)
      await writer.xadd(events, `${ahead + 1000}-${sequence}`, 'e', book(sequence));
    const gw = await gatewayOn(redis.url, { PRODUCTS: id });
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['level2'], [id]);
    const replica = new BookReplica();
    await client.next((m) => {
      replica.apply(m);
      return replica.sequence === 10;
    }, 10_000);

    // The failover: the promoted replica never got 6-10 (its stream, last id included, is the old
    // one's up to 5).
    await writer.del(events);
    for (let sequence = 2; sequence <= 5; sequence++)
      await writer.xadd(events, `${ahead}-${sequence}`, 'e', book(sequence));
    // The upstream goes on from the promoted replica (events 11-19 fell in the switch): a snapshot,
    // then events, their ids from this server's clock, which keeps them above the stream's last
    // (`${ahead}-…`) but below the reader's old position. Then the reader's connection drops.
    await writeSnapshot(19, `${ahead}-5`);
    for (let sequence = 20; sequence <= 25; sequence++) await writer.xadd(events, '*', 'e', book(sequence));
    const feed = String(await writer.call('CLIENT', 'LIST'))
      .split('\n')
      .find((line: string) => line.includes('name=matchbook-gateway-feed'));
    await writer.call('CLIENT', 'KILL', 'ID', /\bid=(\d+)/.exec(feed!)![1]!);
    const snapshot = await client.next((m) => {
      replica.apply(m);
      return m.type === 'snapshot';
    }, 10_000);
    expect(snapshot.sequence).toBe(19);
    await client.next((m) => {
      replica.apply(m);
      return replica.sequence === 25;
    }, 10_000);
    expect(replica.levels().bids).toEqual([['99.00', '25.00000000']]);
    writer.disconnect();
    await client.close();
  }, 30_000);

  it('two replicas on one Redis serve the same products with the same sequences and books', async () => {
    redis = await startRedis();
    publisher = await publish(redis.url);
    const [a, b] = [await gatewayOn(redis.url), await gatewayOn(redis.url, { WS_WORKER_THREADS: '2' })];
    await Promise.all([waitForReady(a!, 200), waitForReady(b!, 200)]);
    const clientA = await TestClient.connect(a!.wsUrl);
    const clientB = await TestClient.connect(b!.wsUrl);
    for (const c of [clientA, clientB]) c.subscribe(['level2', 'matches'], ['BTC-USD']);
    await Promise.all([clientA.nextOfType('snapshot'), clientB.nextOfType('snapshot')]);
    const updates = async (c: TestClient) => {
      // A trade's l2update and match share its sequence: keyed by both, either client may stop between them.
      const seen = new Map<string, string>();
      await c.next((m) => {
        if (m.type === 'l2update' || m.type === 'match')
          seen.set(`${m.type}:${m.sequence}`, JSON.stringify(m));
        return seen.size >= 300;
      }, 15_000);
      return seen;
    };
    const [seenA, seenB] = await Promise.all([updates(clientA), updates(clientB)]);
    let common = 0;
    for (const [key, message] of seenA) {
      if (!seenB.has(key)) continue;
      common++;
      expect(seenB.get(key)).toBe(message);
    }
    expect(common).toBeGreaterThan(100);
    // A client moving to the other replica resumes consistently: its snapshot is not behind.
    const lastOnA = Math.max(
      ...[...seenA.values()].map((m) => (JSON.parse(m) as { sequence: number }).sequence),
    );
    await clientA.close();
    const moved = await TestClient.connect(b!.wsUrl);
    moved.subscribe(['level2'], ['BTC-USD']);
    const snapshot = await moved.nextOfType('snapshot');
    expect(snapshot.sequence as number).toBeGreaterThanOrEqual(lastOnA - 50);
    await Promise.all([clientB.close(), moved.close()]);
  }, 30_000);
});

function isStale(m: Message): boolean {
  return (m.products as { status_message: string | null }[]).some((p) => p.status_message !== null);
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}
