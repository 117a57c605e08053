import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ProductSpec, productFromId } from '../../src/config/products.js';
import { decodeEvent, decodeSnapshot, EVENT_FIELD, redisKeys } from '../../src/feeds/redis/contract.js';
import { type Publisher, type PublisherOptions, startPublisher } from '../../src/feeds/redis/publisher.js';
import type { FeedEvent, SnapshotEvent } from '../../src/feeds/types.js';
import { type RedisProcess, startRedis } from '../support/redis-server.js';

const silent = pino({ level: 'silent' });

function spec(id: string): ProductSpec {
  const product = productFromId(id);
  if (typeof product === 'string') throw new Error(product);
  return product;
}

function connect(url: string): Redis {
  return new Redis(url, { protocol: 2, maxRetriesPerRequest: 3 });
}

/** Polls `probe` until it returns a value (not undefined), failing after the deadline. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Entry {
  readonly id: string;
  readonly event: FeedEvent;
}

/** A stream's entries (all of them, or those after `afterId`), each checked to hold one decodable event. */
async function readStream(client: Redis, productId: string, afterId = '0-0'): Promise<Entry[]> {
  const start = afterId === '0-0' ? '-' : `(${afterId}`;
  const raw = await client.xrange(redisKeys.events(productId), start, '+');
  return raw.map(([id, fields]) => {
    expect(fields).toHaveLength(2);
    expect(fields[0]).toBe(EVENT_FIELD);
    const decoded = decodeEvent(fields[1]!);
    if (!decoded.ok) throw new Error(`entry ${id} does not decode: ${decoded.reason}`);
    expect(decoded.value.product_id).toBe(productId);
    return { id, event: decoded.value };
  });
}

async function readSnapshot(client: Redis, productId: string) {
  const json = await client.get(redisKeys.snapshot(productId));
  if (json === null) return undefined;
  const decoded = decodeSnapshot(json);
  if (!decoded.ok) throw new Error(`snapshot of ${productId} does not decode: ${decoded.reason}`);
  expect(decoded.value.event.product_id).toBe(productId);
  return decoded.value;
}

type Book = { sequence: number; bids: [string, string, number][]; asks: [string, string, number][] };

function bookOf(snapshot: SnapshotEvent): Book {
  return {
    sequence: snapshot.sequence,
    bids: snapshot.bids.map((l) => [...l]),
    asks: snapshot.asks.map((l) => [...l]),
  };
}

/** Applies events, each of which must follow the previous one, to a snapshot's book. */
function replay(snapshot: SnapshotEvent, events: readonly FeedEvent[]): Book {
  const levels = (list: SnapshotEvent['bids']) => new Map(list.map(([p, s, n]) => [p, [s, n] as const]));
  let bids = levels(snapshot.bids);
  let asks = levels(snapshot.asks);
  let sequence = snapshot.sequence;
  for (const event of events) {
    expect(event.sequence).toBe(sequence + 1);
    sequence = event.sequence;
    if (event.type === 'snapshot') {
      bids = levels(event.bids);
      asks = levels(event.asks);
      continue;
    }
    for (const [side, price, size, orders] of event.changes) {
      const book = side === 'buy' ? bids : asks;
      if (Number(size) === 0) book.delete(price);
      else book.set(price, [size, orders]);
    }
  }
  const sorted = (book: typeof bids, descending: boolean): [string, string, number][] =>
    [...book]
      .map(([p, [s, n]]): [string, string, number] => [p, s, n])
      .sort((a, b) => (descending ? Number(b[0]) - Number(a[0]) : Number(a[0]) - Number(b[0])));
  return { sequence, bids: sorted(bids, true), asks: sorted(asks, false) };
}

/** The snapshot key, plus the stream after its stream_id, gives exactly the publisher's book. */
async function expectSnapshotConsistent(client: Redis, productId: string, expected: SnapshotEvent) {
  const snapshot = await readSnapshot(client, productId);
  if (!snapshot) throw new Error(`no snapshot for ${productId}`);
  if (snapshot.stream_id !== '0-0') {
    // stream_id names an entry still in the stream: the one whose event the book ends with.
    const [at] = await client.xrange(redisKeys.events(productId), snapshot.stream_id, snapshot.stream_id);
    expect(at, `entry ${snapshot.stream_id} of ${productId}`).toBeDefined();
    const event = decodeEvent(at![1][1]!);
    expect(event.ok && event.value.sequence).toBe(snapshot.event.sequence);
  }
  const after = await readStream(client, productId, snapshot.stream_id);
  expect(
    replay(
      snapshot.event,
      after.map((e) => e.event),
    ),
  ).toEqual(bookOf(expected));
  return { snapshot, after };
}

describe('redis publisher (matchbook-gateway publish)', () => {
  let redis: RedisProcess;
  let client: Redis;
  let publisher: Publisher | undefined;

  beforeEach(async () => {
    redis = await startRedis();
    client = connect(redis.url);
  });

  afterEach(async () => {
    await publisher?.stop();
    publisher = undefined;
    client.disconnect();
    await redis.stop();
  });

  const start = async (overrides: Partial<PublisherOptions> = {}) => {
    publisher = await startPublisher(
      {
        redis: { url: redis.url, password: undefined },
        products: [spec('BTC-USD'), spec('ETH-USD')],
        eventsPerSecond: 200,
        seed: 7,
        maxLen: 10_000,
        snapshotIntervalMs: 200,
        ...overrides,
      },
      silent,
    );
    return publisher;
  };

  const streamLength = (productId: string) => client.xlen(redisKeys.events(productId));

  it('writes each product a stream and a snapshot under the documented keys, in the shapes the gateway decodes', async () => {
    const startedAt = Date.now();
    const pub = await start();
    // Snapshots come first: they exist as soon as the publisher has started.
    for (const id of ['BTC-USD', 'ETH-USD']) expect(await readSnapshot(client, id)).toBeDefined();
    await waitFor('100 entries per stream', async () =>
      (await streamLength('BTC-USD')) >= 100 && (await streamLength('ETH-USD')) >= 100 ? true : undefined,
    );
    await pub.stop();

    expect((await client.keys('mb:*')).sort()).toEqual([
      'mb:{BTC-USD}:events',
      'mb:{BTC-USD}:snapshot',
      'mb:{ETH-USD}:events',
      'mb:{ETH-USD}:snapshot',
    ]);
    expect(await client.type('mb:{BTC-USD}:events')).toBe('stream');
    expect(await client.type('mb:{BTC-USD}:snapshot')).toBe('string');

    const books = pub.books();
    let total = 0;
    for (const [i, id] of ['BTC-USD', 'ETH-USD'].entries()) {
      const entries = await readStream(client, id);
      total += entries.filter((e) => e.event.type !== 'snapshot').length;
      // The incarnation announces itself with its snapshot, above a wall-clock floor (Redis was empty).
      expect(entries[0]!.event.type).toBe('snapshot');
      expect(entries[0]!.event.sequence).toBeGreaterThan(startedAt * 1_000);
      // Nothing trimmed or lost: the stream holds every event since that snapshot, in order.
      for (const [k, entry] of entries.entries()) {
        expect(entry.event.sequence).toBe(entries[0]!.event.sequence + k);
        expect(entry.event.epoch).toBe(pub.epoch);
        if (k > 0) expect(['book', 'trade']).toContain(entry.event.type);
      }
      expect(entries.at(-1)!.event.sequence).toBe(books[i]!.sequence);
      const { snapshot } = await expectSnapshotConsistent(client, id, books[i]!);
      // Rewritten every 200 ms, with the stream id of that tick's last XADD.
      expect(snapshot.stream_id).not.toBe('0-0');
    }
    expect(pub.published()).toBe(total);
    expect(pub.failed()).toBe(0);
  });

  it('bounds each stream with MAXLEN ~ and keeps the snapshot within it', async () => {
    const maxLen = 100;
    const pub = await start({
      products: [spec('BTC-USD')],
      eventsPerSecond: 2_000,
      maxLen,
      snapshotIntervalMs: 20,
    });
    await waitFor('2,000 published events', async () => (pub.published() >= 2_000 ? true : undefined));
    await pub.stop();
    const length = await streamLength('BTC-USD');
    // Approximate trimming removes whole macro nodes (stream-node-max-entries, 100 by default).
    expect(length).toBeGreaterThanOrEqual(maxLen);
    expect(length).toBeLessThanOrEqual(maxLen + 100);
    const entries = await readStream(client, 'BTC-USD');
    for (const [k, entry] of entries.entries())
      expect(entry.event.sequence).toBe(entries[0]!.event.sequence + k);
    await expectSnapshotConsistent(client, 'BTC-USD', pub.books()[0]!);
  });

  it('keeps stepping while Redis is down and rewrites the snapshots as soon as it is back', async () => {
    // Periodic snapshots are out of the picture: any snapshot after the restart is the reconnection's.
    const pub = await start({ snapshotIntervalMs: 600_000 });
    await waitFor('some events', async () => ((await streamLength('BTC-USD')) >= 20 ? true : undefined));
    const before = pub.books().map((b) => b.sequence);

    await redis.kill();
    client.disconnect();
    // The markets keep moving; their events cannot be written and are counted, not buffered.
    await waitFor('failed writes', async () => (pub.failed() > 0 ? true : undefined));
    await redis.restart();
    client = connect(redis.url);

    const snapshots = await Promise.all(
      ['BTC-USD', 'ETH-USD'].map((id) => waitFor(`the snapshot of ${id}`, () => readSnapshot(client, id))),
    );
    for (const [i, snapshot] of snapshots.entries()) {
      // The book moved on while Redis was down; the new stream starts after it.
      expect(snapshot.event.sequence).toBeGreaterThan(before[i]!);
      expect(snapshot.stream_id).toBe('0-0');
    }
    await waitFor('events after the restart', async () =>
      (await streamLength('BTC-USD')) >= 20 && (await streamLength('ETH-USD')) >= 20 ? true : undefined,
    );
    await pub.stop();
    const books = pub.books();
    for (const [i, id] of ['BTC-USD', 'ETH-USD'].entries()) {
      const { after } = await expectSnapshotConsistent(client, id, books[i]!);
      expect(after[0]!.event.sequence).toBe(snapshots[i]!.event.sequence + 1);
    }
  });
  it("continues above the stream's last sequence when Redis kept it, even above the wall-clock floor", async () => {
    const last = 5_000_000_000_000_000;
    await client.xadd(
      redisKeys.events('BTC-USD'),
      '*',
      EVENT_FIELD,
      JSON.stringify({
        type: 'book',
        product_id: 'BTC-USD',
        sequence: last,
        time: '2026-12-01T00:00:00.000000Z',
        changes: [],
      }),
    );
    const pub = await start({ products: [spec('BTC-USD')] });
    await waitFor('some events', async () => ((await streamLength('BTC-USD')) >= 3 ? true : undefined));
    await pub.stop();
    const [, announcement, next] = await readStream(client, 'BTC-USD');
    expect(announcement!.event).toMatchObject({ type: 'snapshot', sequence: last + 1, epoch: pub.epoch });
    expect(next!.event.sequence).toBe(last + 2);
    expect((await readSnapshot(client, 'BTC-USD'))!.event.epoch).toBe(pub.epoch);
  });

  it('a second publisher on the same products takes over: a newer epoch above the first one, which stops writing', async () => {
    const first = await start({ products: [spec('BTC-USD')] });
    await waitFor('some events', async () => ((await streamLength('BTC-USD')) >= 20 ? true : undefined));
    const second = await startPublisher(
      {
        redis: { url: redis.url, password: undefined },
        products: [spec('BTC-USD')],
        eventsPerSecond: 200,
        seed: 8,
        maxLen: 10_000,
        snapshotIntervalMs: 200,
      },
      silent,
    );
    try {
      expect(second.epoch > first.epoch).toBe(true);
      const sinceSwitch = async () => {
        const entries = await readStream(client, 'BTC-USD');
        const switchAt = entries.findIndex((e) => e.event.epoch === second.epoch);
        return { entries, switchAt, later: entries.slice(switchAt + 1) };
      };
      const byEpoch = (list: readonly Entry[], epoch: string) =>
        list.filter((e) => e.event.epoch === epoch).length;
      // The first one's next snapshot write (every 200 ms) finds the key taken by a newer
      // incarnation, and it stops: its entries after the switch stop growing.
      await waitFor('100 entries of the second publisher', async () =>
        byEpoch((await sinceSwitch()).later, second.epoch) >= 100 ? true : undefined,
      );
      const { entries, switchAt, later } = await sinceSwitch();
      expect(entries[switchAt]!.event.type).toBe('snapshot');
      const firstBefore = entries.slice(0, switchAt).filter((e) => e.event.epoch === first.epoch);
      expect(entries[switchAt]!.event.sequence).toBeGreaterThan(firstBefore.at(-1)!.event.sequence);
      const firstAfter = byEpoch(later, first.epoch);
      await waitFor('50 more entries of the second publisher', async () =>
        byEpoch((await sinceSwitch()).later, second.epoch) >= 150 ? true : undefined,
      );
      expect(byEpoch((await sinceSwitch()).later, first.epoch)).toBe(firstAfter);
      // The key only ever moves to the newer incarnation.
      expect((await readSnapshot(client, 'BTC-USD'))!.event.epoch).toBe(second.epoch);
    } finally {
      await second.stop();
    }
  });
});
