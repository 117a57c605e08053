import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { redisKeys } from '../../src/feeds/redis/contract.js';
import { Follower } from '../support/follower.js';
import { startTestGateway, type TestGateway, waitForMetric } from '../support/gateway.js';
import { type PublisherProcess, spawnPublisher } from '../support/process.js';
import { type RedisProcess, startRedis } from '../support/redis-server.js';
import { type Message, TestClient } from '../support/ws-client.js';

/**
 * Upstream restarts with real processes: redis-server, `matchbook-gateway publish` run as users run
 * it, gateways with FEED_SOURCE=redis. After each incarnation change, every client book must equal
 * the book a gateway started afterwards serves at the same sequence.
 */

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const AWAIT_MS = 20_000;

let redis: RedisProcess | undefined;
const publishers: PublisherProcess[] = [];
const gateways: TestGateway[] = [];
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate();
  for (const gw of gateways.splice(0)) await gw.stop();
  for (const p of publishers.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited();
  }
  await redis?.stop();
  redis = undefined;
});

async function publisher(url: string, seed: number): Promise<PublisherProcess> {
  const p = await spawnPublisher({
    REDIS_URL: url,
    PRODUCTS: PRODUCTS.join(','),
    SIM_EVENTS_PER_SEC: '200',
    SIM_SEED: String(seed),
    PUBLISH_SNAPSHOT_MS: '200',
  });
  publishers.push(p);
  return p;
}

async function kill(p: PublisherProcess): Promise<void> {
  p.child.kill('SIGKILL');
  await p.exited();
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

async function waitForReady(gw: TestGateway): Promise<void> {
  const deadline = performance.now() + AWAIT_MS;
  while ((await fetch(`${gw.httpUrl}/readyz`)).status !== 200) {
    if (performance.now() > deadline) throw new Error('/readyz never became 200');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Starts a gateway now, follows both it and `earlier` for `updates` more sequences of each product,
 * and requires every book of `earlier` to equal the later gateway's at every sequence both saw.
 */
async function expectSameBooksAsAFreshGateway(url: string, earlier: Follower, updates = 100): Promise<void> {
  const fresh = await Follower.on((await gatewayOn(url)).wsUrl, PRODUCTS, clients);
  for (const id of PRODUCTS) {
    const target = fresh.book(id).sequence + updates;
    await fresh.until(() => fresh.book(id).sequence >= target);
    await earlier.until(() => earlier.book(id).sequence >= target);
    let common = 0;
    for (const [sequence, book] of fresh.book(id).history) {
      const theirs = earlier.book(id).history.get(sequence);
      if (theirs === undefined) continue;
      common++;
      expect(theirs, `${id} at ${sequence}`).toEqual(book);
    }
    expect(common, id).toBeGreaterThan(updates / 2);
  }
  expectSameTexts(earlier, fresh);
}

/** Replicas send the same bytes for the same upstream event. */
function expectSameTexts(a: Follower, b: Follower): void {
  let common = 0;
  for (const [key, text] of a.texts) {
    if (!b.texts.has(key)) continue;
    common++;
    expect(b.texts.get(key), key).toBe(text);
  }
  expect(common).toBeGreaterThan(0);
}

describe('upstream incarnations (real redis-server, publisher and gateway processes)', () => {
  it('publisher restarted with the Redis data kept: clients get a fresh snapshot above their sequence and the new market only', async () => {
    redis = await startRedis();
    const first = await publisher(redis.url, 1);
    const gw = await gatewayOn(redis.url);
    // A second replica, serving from a worker thread, through the restart.
    const other = await gatewayOn(redis.url, { WS_WORKER_THREADS: '1' });
    await Promise.all([waitForReady(gw), waitForReady(other)]);
    const client = await Follower.on(gw.wsUrl, PRODUCTS, clients);
    const otherClient = await Follower.on(other.wsUrl, PRODUCTS, clients);
    await client.until(() => PRODUCTS.every((id) => client.book(id).sequences.length > 100));
    const before = PRODUCTS.map((id) => client.book(id).sequence);

    await kill(first);
    await publisher(redis.url, 2);
    const snapshots = await client.freshSnapshots();
    const otherSnapshots = await otherClient.freshSnapshots();
    // The switch happened at the same stream entry on both replicas: the same snapshot, byte for byte.
    expect(otherSnapshots.map((m) => JSON.stringify(m))).toEqual(snapshots.map((m) => JSON.stringify(m)));
    for (const [i, id] of PRODUCTS.entries()) {
      expect(snapshots.find((s) => s.product_id === id)!.sequence as number).toBeGreaterThan(before[i]!);
    }
    await waitForMetric(gw, 'ws_feed_resyncs_total', 'reason="incarnation"', (v) => v === PRODUCTS.length);
    await expectSameBooksAsAFreshGateway(redis.url, client);
    await otherClient.until(() =>
      PRODUCTS.every((id) => otherClient.book(id).sequence >= client.book(id).sequence),
    );
    expectSameTexts(client, otherClient);
    expect(await gw.metric('ws_feed_invalid_events_total', 'reason="stale_sequence"')).toBeUndefined();
    expect((await fetch(`${gw.httpUrl}/readyz`)).status).toBe(200);
  }, 90_000);

  it('publisher restarted after Redis lost its data: sequences still go up, and books match a fresh gateway', async () => {
    redis = await startRedis();
    const first = await publisher(redis.url, 3);
    const gw = await gatewayOn(redis.url);
    await waitForReady(gw);
    const client = await Follower.on(gw.wsUrl, PRODUCTS, clients);
    await client.until(() => PRODUCTS.every((id) => client.book(id).sequences.length > 100));
    const before = PRODUCTS.map((id) => client.book(id).sequence);

    await kill(first);
    await redis.restart();
    await publisher(redis.url, 4);
    const snapshots = await client.freshSnapshots();
    for (const [i, id] of PRODUCTS.entries()) {
      expect(snapshots.find((s) => s.product_id === id)!.sequence as number).toBeGreaterThan(before[i]!);
    }
    await waitForMetric(gw, 'ws_feed_resyncs_total', 'reason="incarnation"', (v) => v === PRODUCTS.length);
    await waitForReady(gw);
    await expectSameBooksAsAFreshGateway(redis.url, client);
  }, 90_000);

  it('two publishers writing the same products at once: the newer one wins, the older one is dropped, counted and stops', async () => {
    redis = await startRedis();
    const older = await publisher(redis.url, 5);
    const gw = await gatewayOn(redis.url);
    await waitForReady(gw);
    const client = await Follower.on(gw.wsUrl, PRODUCTS, clients);
    await client.until(() => PRODUCTS.every((id) => client.book(id).sequences.length > 50));

    await publisher(redis.url, 6);
    await client.freshSnapshots();
    // The older one wrote on after the newer one's snapshot: those entries never reach a book.
    await waitForMetric(gw, 'ws_feed_invalid_events_total', 'reason="superseded_incarnation"', (v) => v > 0);
    const deadline = performance.now() + AWAIT_MS;
    while (!older.stdout().includes('a newer publisher writes these products')) {
      if (performance.now() > deadline)
        throw new Error(`the older publisher never stopped:\n${older.stdout()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await expectSameBooksAsAFreshGateway(redis.url, client);
    expect(await gw.metric('ws_feed_resyncs_total', 'reason="incarnation"')).toBe(PRODUCTS.length);
    expect((await fetch(`${gw.httpUrl}/readyz`)).status).toBe(200);
  }, 90_000);

  it('a writer without epochs restarting at sequence 1: the product is stale in /readyz, status and metrics until a snapshot above the old sequence', async () => {
    redis = await startRedis();
    const writer = new Redis(redis.url, { protocol: 2 });
    const id = 'BTC-USD';
    const bids = [['100.00', '1.00000000', 1]];
    const asks = [['101.00', '1.00000000', 1]];
    const time = '2026-12-01T00:00:00.000000Z';
    const writeSnapshot = async (sequence: number, bid = bids) => {
      const [last] = await writer.xrevrange(redisKeys.events(id), '+', '-', 'COUNT', 1);
      const event = { type: 'snapshot', product_id: id, sequence, time, bids: bid, asks };
      await writer.set(redisKeys.snapshot(id), JSON.stringify({ stream_id: last?.[0] ?? '0-0', event }));
    };
    const writeEvents = async (from: number, to: number) => {
      for (let sequence = from; sequence <= to; sequence++) {
        const changes = [['buy', '99.00', `${sequence % 7 === 0 ? 0 : sequence}.00000000`, 1]];
        const event = { type: 'book', product_id: id, sequence, time, changes };
        await writer.xadd(redisKeys.events(id), '*', 'e', JSON.stringify(event));
      }
    };
    await writeSnapshot(1);
    await writeEvents(2, 40);
    const gw = await startTestGateway({ FEED_SOURCE: 'redis', REDIS_URL: redis.url, PRODUCTS: id });
    gateways.push(gw);
    await waitForReady(gw);
    const status = await TestClient.connect(gw.wsUrl);
    clients.push(status);
    status.subscribe([{ name: 'status' }]);
    await status.nextOfType('status');

    // Restarted at 1: another market under sequences already served.
    await writeSnapshot(1, [['90.00', '1.00000000', 1]]);
    await writeEvents(2, 5);
    const stale = await status.next((m) => m.type === 'status' && statusMessage(m) !== null, AWAIT_MS);
    expect(statusMessage(stale)).toMatch(/^product stale: upstream sequence went back from 40 to 2/);
    const notReady = await fetch(`${gw.httpUrl}/readyz`);
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as { reason: string }).reason).toMatch(
      /^BTC-USD stale: upstream .*not above 40/,
    );
    expect(await gw.metric('ws_feed_stale_products')).toBe(1);
    expect(await gw.metric('ws_feed_invalid_events_total', 'reason="sequence_regression"')).toBeGreaterThan(
      0,
    );

    // The writer carries on as a live market would; once its sequences pass the old ones, a
    // snapshot above them replaces the book.
    let live = true;
    const market = (async () => {
      for (let sequence = 6; live; sequence++) {
        await writeEvents(sequence, sequence);
        if (sequence === 45) await writeSnapshot(45, [['90.00', '1.00000000', 1]]);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await status.next((m) => m.type === 'status' && statusMessage(m) === null, AWAIT_MS);
    live = false;
    await market;
    await waitForReady(gw);
    expect(await gw.metric('ws_feed_stale_products')).toBe(0);
    expect(await gw.metric('ws_feed_resyncs_total', 'reason="incarnation"')).toBe(1);
    const { body } = await gw.getJson<{ bids: string[][]; sequence: number }>(`/products/${id}/book?level=2`);
    // The new market's book (its 90.00 bid), nothing left of the old one's (100.00).
    expect(body.bids.map((level) => level[0])).toContain('90.00');
    expect(body.bids.map((level) => level[0])).not.toContain('100.00');
    expect(body.sequence).toBeGreaterThanOrEqual(45);
    writer.disconnect();
  }, 60_000);
});

function statusMessage(m: Message): string | null {
  return (m.products as { status_message: string | null }[])[0]!.status_message;
}
