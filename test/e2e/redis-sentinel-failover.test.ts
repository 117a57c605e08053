import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { redisKeys } from '../../src/feeds/redis/contract.js';
import { Follower } from '../support/follower.js';
import { getFresh, readMetric } from '../support/gateway.js';
import {
  type GatewayProcess,
  type PublisherProcess,
  spawnGateway,
  spawnPublisher,
} from '../support/process.js';
import { type SentinelSetup, startSentinels } from '../support/redis-sentinel.js';
import { freePort } from '../support/redis-server.js';
import { attemptUpgrade, type UpgradeOutcome } from '../support/upgrade.js';
import type { TestClient } from '../support/ws-client.js';

/**
 * Issue 16: Redis without a single point of failure. A primary, a replica and three Sentinels (real
 * processes); `matchbook-gateway publish` and two gateways (FEED_SOURCE=redis, LIMITS_STORE=redis)
 * find the primary through the Sentinels only. The primary is killed with SIGKILL; everything must
 * follow the promoted replica without a restart.
 */

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const AWAIT_MS = 30_000;
const LIMITED_IP = '127.0.0.40';

let setup: SentinelSetup | undefined;
const processes: (GatewayProcess | PublisherProcess)[] = [];
const clients: TestClient[] = [];
const sockets: UpgradeOutcome[] = [];
const redisClients: Redis[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate();
  for (const o of sockets.splice(0)) o.socket?.destroy();
  for (const r of redisClients.splice(0)) r.disconnect();
  for (const p of processes.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited();
  }
  await setup?.stop();
  setup = undefined;
});

interface RestBook {
  bids: [string, string, number][];
  asks: [string, string, number][];
  sequence: number;
}

const base = (port: number) => `http://127.0.0.1:${port}`;

async function metric(g: GatewayProcess, name: string, labels = ''): Promise<number | undefined> {
  return readMetric((await getFresh(`${base(g.port)}/metrics`)).body, name, labels);
}

/** Server-side state with no event a client can await: read it until it holds. */
async function until<T>(what: string, read: () => Promise<T>, holds: (value: T) => boolean): Promise<T> {
  const deadline = performance.now() + AWAIT_MS;
  for (;;) {
    const value = await read();
    if (holds(value)) return value;
    if (performance.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const readyz = async (g: GatewayProcess) => (await getFresh(`${base(g.port)}/readyz`)).status;

/** The follower's book equals the gateway's REST book at the REST book's sequence. */
async function expectBookLikeRest(g: GatewayProcess, follower: Follower, productId: string): Promise<void> {
  const rest = JSON.parse(
    (await getFresh(`${base(g.port)}/products/${productId}/book?level=2`)).body,
  ) as RestBook;
  const book = follower.book(productId);
  await follower.until(() => book.sequence >= rest.sequence);
  expect(book.history.get(rest.sequence), `${productId} at ${rest.sequence}`).toEqual({
    bids: rest.bids.map(([p, s]) => [p, s]),
    asks: rest.asks.map(([p, s]) => [p, s]),
  });
}

/** The sequence of the last entry of the product's stream. */
async function lastSequence(redis: Redis, productId: string): Promise<number> {
  const [[, fields] = ['', []]] = await redis.xrevrange(redisKeys.events(productId), '+', '-', 'COUNT', 1);
  return (JSON.parse(fields[1]!) as { sequence: number }).sequence;
}

/** Sum of the live per-IP counts in Redis for `ip` (fields whose replica liveness key exists). */
async function countedInRedis(redis: Redis, ip: string): Promise<number> {
  const fields = await redis.hgetall(`mb:conn:{${ip}}`);
  let sum = 0;
  for (const [field, n] of Object.entries(fields)) {
    if ((await redis.exists(`mb:replica:${field}`)) === 1) sum += Number(n);
  }
  return sum;
}

describe('Redis Sentinel failover (real primary, replica, three Sentinels, publisher and two gateways)', () => {
  it('kill -9 of the primary: publisher and gateways follow the promoted replica, clients get fresh snapshots, books equal REST, limits hold', async () => {
    setup = await startSentinels();
    const redisEnv = {
      // Nothing listens here: every connection must come from what the Sentinels say.
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      REDIS_SENTINELS: setup.addresses,
      REDIS_SENTINEL_MASTER: setup.masterName,
      PRODUCTS: PRODUCTS.join(','),
    };
    const publisher = await spawnPublisher({
      ...redisEnv,
      SIM_EVENTS_PER_SEC: '100',
      SIM_SEED: '16',
      PUBLISH_SNAPSHOT_MS: '200',
    });
    processes.push(publisher);
    const starting = publisher
      .stdout()
      .split('\n')
      .find((l) => l.includes('publisher starting'));
    const { epoch } = JSON.parse(starting!) as { epoch: string };
    const gateway = async (workers: string) => {
      const g = await spawnGateway({
        ...redisEnv,
        FEED_SOURCE: 'redis',
        LIMITS_STORE: 'redis',
        WS_MAX_CONNECTIONS_PER_IP: '3',
        WS_WORKER_THREADS: workers,
        // Raw upgrades never subscribe: keep them open for the whole test.
        SUBSCRIBE_TIMEOUT_MS: '600000',
      });
      processes.push(g);
      return g;
    };
    const [a, b] = [await gateway('0'), await gateway('1')];
    expect(a.stdout()).toContain(
      `the primary of Sentinel master \\"${setup.masterName}\\" via ${setup.addresses}`,
    );
    for (const g of [a, b])
      await until(
        '/readyz before the failover',
        () => readyz(g),
        (s) => s === 200,
      );
    const followers = [
      await Follower.on(`ws://127.0.0.1:${a.port}/`, PRODUCTS, clients, { localAddress: '127.0.0.2' }),
      await Follower.on(`ws://127.0.0.1:${b.port}/`, PRODUCTS, clients, { localAddress: '127.0.0.3' }),
    ];
    for (const f of followers) await f.until(() => PRODUCTS.every((id) => f.book(id).sequences.length > 50));

    // The per-IP limit (3) across both gateways, in the primary.
    for (const port of [a.port, a.port, b.port])
      sockets.push(await attemptUpgrade(port, { localAddress: LIMITED_IP }));
    expect(sockets.map((o) => o.status)).toEqual([101, 101, 101]);
    expect((await attemptUpgrade(a.port, { localAddress: LIMITED_IP })).status).toBe(429);
    expect((await attemptUpgrade(b.port, { localAddress: LIMITED_IP })).status).toBe(429);
    // Asynchronous replication: the primary acknowledges writes the replica has not got yet. Make
    // that certain for the last 20 events of each product, which the gateways serve all the same.
    setup.replication.freeze();
    const replica = new Redis({ host: '127.0.0.1', port: setup.replica.port, protocol: 2 });
    redisClients.push(replica);
    const replicated = await Promise.all(PRODUCTS.map((id) => lastSequence(replica, id)));
    for (const f of followers)
      await f.until(() => PRODUCTS.every((id, p) => f.book(id).sequence >= replicated[p]! + 20));
    const before = followers.map((f) => PRODUCTS.map((id) => f.book(id).sequence));
    const snapshotsBefore = followers.map((f) => f.snapshots.length);

    const killedAt = performance.now();
    await setup.primary.kill('SIGKILL');
    // While no primary is reachable a gateway admits on its local limits alone, as with Redis down.
    const duringSwitch = await attemptUpgrade(a.port, { localAddress: '127.0.0.41' });
    sockets.push(duringSwitch);
    expect(duringSwitch.status).toBe(101);
    const fallbackDuringSwitch = await metric(a, 'ws_limits_store_fallback');

    const switched = await setup.switched;
    expect(switched.port).toBe(setup.replica.port);
    expect(await setup.masterPort(1)).toBe(setup.replica.port);

    // Clients: a fresh snapshot of every product (the publisher's events during the switch were
    // never written, so the gateways see a gap and resynchronise), then live updates again.
    const fresh = await Promise.all(followers.map((f) => f.freshSnapshots()));
    const liveAgain = await Promise.all(
      followers.map(async (f, i) => {
        const snapshotAt = Math.min(...f.snapshotTimes.slice(snapshotsBefore[i]));
        const target = PRODUCTS.map((id) => f.book(id).sequence + 1);
        await f.until(() => PRODUCTS.every((id, p) => f.book(id).sequence >= target[p]!));
        return { snapshotAt, updatedAt: performance.now() };
      }),
    );
    for (const [i, snapshots] of fresh.entries()) {
      for (const [p, id] of PRODUCTS.entries()) {
        const snapshot = snapshots.find((s) => s.product_id === id)!;
        expect(snapshot.sequence as number, `${id} on gateway ${i}`).toBeGreaterThan(before[i]![p]!);
      }
    }

    // The publisher carried on, in the same incarnation, on the promoted replica.
    const promoted = replica;
    expect(await promoted.call('ROLE').then((r) => (r as string[])[0])).toBe('master');
    const lost: number[] = [];
    for (const [p, id] of PRODUCTS.entries()) {
      // The promoted replica's stream ends below what the clients were served: those writes are lost.
      const entries = await promoted.xrange(redisKeys.events(id), '-', '+');
      const sequences = entries.map(
        ([, fields]) => (JSON.parse(fields[1]!) as { sequence: number }).sequence,
      );
      const kept = sequences.filter((sequence) => sequence <= before[0]![p]!);
      lost.push(before[0]![p]! - Math.max(...kept));
      // About 20 (what was still on its way to the replica when the link froze arrived).
      expect(lost[p], id).toBeGreaterThan(0);
    }
    for (const [p, id] of PRODUCTS.entries()) {
      const [[, fields] = ['', []]] = await promoted.xrevrange(redisKeys.events(id), '+', '-', 'COUNT', 1);
      const last = JSON.parse(fields[1]!) as { epoch: string; sequence: number };
      expect(last.epoch).toBe(epoch);
      expect(last.sequence).toBeGreaterThan(before[0]![p]!);
    }
    expect(publisher.child.exitCode).toBeNull();
    expect(
      publisher
        .stdout()
        .split('\n')
        .filter((l) => l.includes('connected to redis, writing snapshots')),
    ).toHaveLength(2);

    // Books equal REST on both gateways; nothing the protocol promises was lost on the way.
    for (const [i, g] of [a, b].entries()) {
      for (const id of PRODUCTS) await expectBookLikeRest(g, followers[i]!, id);
      expect(followers[i]!.gaps, `gateway ${i}`).toEqual([]);
      await until(
        '/readyz after the failover',
        () => readyz(g),
        (s) => s === 200,
      );
      expect(await metric(g, 'ws_feed_stale')).toBe(0);
      // The same incarnation went on: a gap resync, never an incarnation switch or a regression.
      expect(await metric(g, 'ws_feed_resyncs_total', 'reason="incarnation"')).toBeUndefined();
      expect(await metric(g, 'ws_feed_invalid_events_total', 'reason="sequence_regression"')).toBeUndefined();
      expect(await metric(g, 'ws_feed_resyncs_total', 'reason="gap"')).toBeGreaterThanOrEqual(
        PRODUCTS.length,
      );
    }

    // The limits are shared again, on the new primary: the three connections still count there,
    // and the one admitted during the switch has been written to it too.
    for (const g of [a, b]) {
      await until(
        'ws_limits_store_fallback after the failover',
        () => metric(g, 'ws_limits_store_fallback'),
        (v) => v === 0,
      );
    }
    await until(
      'counts on the new primary',
      () => countedInRedis(promoted, LIMITED_IP),
      (n) => n === 3,
    );
    await until(
      'the switch-time admission on the new primary',
      () => countedInRedis(promoted, '127.0.0.41'),
      (n) => n === 1,
    );
    expect((await attemptUpgrade(a.port, { localAddress: LIMITED_IP })).status).toBe(429);
    expect((await attemptUpgrade(b.port, { localAddress: LIMITED_IP })).status).toBe(429);

    const ms = (t: number) => Math.round(t - killedAt);
    // The figure README (Redis high availability) and bench/RESULTS.md quote.
    console.log(
      JSON.stringify({
        sentinelFailover: {
          downAfterMs: 1000,
          switchMasterMs: ms(switched.at),
          gateways: liveAgain.map((l) => ({
            freshSnapshotMs: ms(l.snapshotAt),
            firstUpdateAfterMs: ms(l.updatedAt),
          })),
          limitsFallbackSeenDuringSwitch: fallbackDuringSwitch === 1,
          servedEventsLostPerProduct: lost,
        },
      }),
    );
  }, 120_000);
});
