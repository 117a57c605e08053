import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClusterLimits, connKey, LIMITS_CLIENT_ROLE } from '../../src/limits/redis-limits.js';
import { redisClientOptions } from '../../src/redis/client.js';
import { type RedisProcess, startRedis } from '../support/redis-server.js';

// --- fixtures ---

let server: RedisProcess;
const clients: Redis[] = [];
const replicas: ClusterLimits[] = [];

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server?.stop();
});
afterEach(async () => {
  await Promise.all(replicas.splice(0).map((r) => r.stop()));
  for (const c of clients.splice(0)) c.disconnect();
});

async function client(): Promise<Redis> {
  const c = new Redis({
    ...redisClientOptions({ url: server.url, password: undefined }, LIMITS_CLIENT_ROLE),
    connectTimeout: 300,
    // Generous: a timeout under a loaded test machine would be a (correct) fallback, not what these test.
    commandTimeout: 1000,
    retryStrategy: () => 50,
  });
  c.on('error', () => undefined);
  clients.push(c);
  if (c.status !== 'ready') await once(c, 'ready');
  return c;
}

interface Replica {
  readonly limits: ClusterLimits;
  readonly redis: Redis;
  readonly fallbacks: boolean[];
}

async function replica(
  replicaId: string,
  options: { maxConnectionsPerIp?: number; connectRate?: { perSecond: number; burst: number } } = {},
): Promise<Replica> {
  const redis = await client();
  const fallbacks: boolean[] = [];
  const limits = new ClusterLimits(
    {
      redis,
      replicaId,
      maxConnectionsPerIp: options.maxConnectionsPerIp ?? 3,
      connectRate: options.connectRate ?? { perSecond: 100, burst: 100 },
      heartbeatMs: 200,
      replicaTtlMs: 600,
    },
    { fallbackChanged: (usingLocal) => fallbacks.push(usingLocal) },
  );
  replicas.push(limits);
  limits.start();
  return { limits, redis, fallbacks };
}

/** Polls `probe` until `done` holds, failing after `timeoutMs`. */
async function eventually<T>(
  probe: () => Promise<T> | T,
  done: (value: T) => boolean,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms (last: ${String(value)})`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const acquireN = async (r: Replica, ip: string, n: number) => {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await r.limits.acquire(ip));
  return out;
};

// --- tests ---

describe('ClusterLimits (LIMITS_STORE=redis) on a real Redis', () => {
  it('enforces one per-IP connection limit across replicas; release makes room', async () => {
    const a = await replica('a');
    const b = await replica('b');
    const ip = '10.0.0.1';
    expect(await acquireN(a, ip, 2)).toEqual(['ok', 'ok']);
    expect(await b.limits.acquire(ip)).toBe('ok');
    expect(await a.limits.acquire(ip)).toBe('per_ip_limit');
    expect(await b.limits.acquire(ip)).toBe('per_ip_limit');
    // Another address has its own allowance.
    expect(await b.limits.acquire('10.0.0.2')).toBe('ok');

    await b.limits.release(ip);
    expect(await a.limits.acquire(ip)).toBe('ok');
    expect(await b.limits.acquire(ip)).toBe('per_ip_limit');

    await a.limits.release(ip);
    await a.limits.release(ip);
    await a.limits.release(ip);
    // A release without a matching acquire is ignored, never a negative count.
    await a.limits.release(ip);
    expect(await a.redis.hgetall(connKey(ip))).toEqual({});
    expect(await acquireN(b, ip, 4)).toEqual(['ok', 'ok', 'ok', 'per_ip_limit']);
    expect(a.fallbacks).toEqual([]);
    expect(b.fallbacks).toEqual([]);
  });

  it('a replica that dies without cleanup stops counting after replicaTtlMs, and its field is reaped', async () => {
    const a = await replica('a');
    const b = await replica('b');
    const ip = '10.0.1.1';
    expect(await acquireN(b, ip, 2)).toEqual(['ok', 'ok']);
    expect(await acquireN(a, ip, 2)).toEqual(['ok', 'per_ip_limit']);

    // kill -9 of b: no stop(), no release; it just goes silent (its connection to Redis is gone).
    const killedAt = Date.now();
    b.redis.disconnect();
    expect(await a.limits.acquire(ip)).toBe('per_ip_limit');

    await eventually(
      () => a.limits.acquire(ip),
      (r) => r === 'ok',
    );
    // Not before its liveness key could have expired (its last heartbeat was about 200 ms before at most).
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(200);
    const fields = await a.redis.hgetall(connKey(ip));
    expect(Object.keys(fields)).toHaveLength(1);
    expect(Object.values(fields)).toEqual(['2']);
    expect(await a.limits.acquire(ip)).toBe('ok');
    expect(await a.limits.acquire(ip)).toBe('per_ip_limit');
  });

  it('stop() removes the replica: its liveness key and its counts', async () => {
    const a = await replica('stopping');
    const b = await replica('b');
    const ip = '10.0.5.1';
    expect(await acquireN(a, ip, 3)).toEqual(['ok', 'ok', 'ok']);
    expect(await a.redis.keys('mb:replica:stopping@*')).toHaveLength(1);
    await a.limits.stop();
    expect(await b.redis.keys('mb:replica:stopping@*')).toEqual([]);
    expect(await b.redis.hgetall(connKey(ip))).toEqual({});
    expect(await acquireN(b, ip, 4)).toEqual(['ok', 'ok', 'ok', 'per_ip_limit']);
    expect(a.fallbacks).toEqual([]);
  });

  it('shares the connect rate across replicas, with retryAfterMs', async () => {
    const rate = { perSecond: 1, burst: 3 };
    const a = await replica('a', { connectRate: rate });
    const b = await replica('b', { connectRate: rate });
    const ip = '10.0.2.1';
    const onA = [];
    for (let i = 0; i < 3; i++) onA.push(await a.limits.admitConnect(ip));
    expect(onA).toEqual([{ allowed: true }, { allowed: true }, { allowed: true }]);
    const refused = await b.limits.admitConnect(ip);
    expect(refused.allowed).toBe(false);
    expect(refused.allowed === false && refused.retryAfterMs).toBeGreaterThan(0);
    expect(await b.limits.admitConnect('10.0.2.2')).toEqual({ allowed: true });
  });

  it('a release that could not be sent is made good once Redis is reachable again', async () => {
    const a = await replica('a');
    const b = await replica('b');
    const ip = '10.0.3.1';
    expect(await acquireN(a, ip, 3)).toEqual(['ok', 'ok', 'ok']);

    // a loses Redis (Redis itself keeps running and keeps a's counts), and releases one meanwhile.
    const ended = once(a.redis, 'end');
    a.redis.disconnect();
    await a.limits.release(ip);
    await ended;
    expect(a.fallbacks).toEqual([true]);
    expect(await b.limits.acquire(ip)).toBe('per_ip_limit');

    await a.redis.connect();
    await eventually(
      () => a.fallbacks.at(-1),
      (v) => v === false,
    );
    expect(a.fallbacks).toEqual([true, false]);
    // a now counts 2 under a fresh incarnation; the old field (3) is dead and reaped.
    expect(await b.limits.acquire(ip)).toBe('ok');
    expect(await b.limits.acquire(ip)).toBe('per_ip_limit');
    expect(Object.values(await b.redis.hgetall(connKey(ip))).sort()).toEqual(['1', '2']);
  });

  it('a reconnection re-bases the counts: ones the server lost (a failover to a replica that had not got them) are written again', async () => {
    const a = await replica('a');
    const b = await replica('b');
    const ip = '10.0.5.1';
    expect(await acquireN(a, ip, 3)).toEqual(['ok', 'ok', 'ok']);
    // The server a reconnects to has a's liveness key but not its last increment.
    const [field] = Object.keys(await b.redis.hgetall(connKey(ip)));
    await b.redis.hset(connKey(ip), field!, 2);
    expect(await b.limits.acquire(ip)).toBe('ok');
    await b.limits.release(ip);
    const ready = once(a.redis, 'ready');
    await b.redis.client('KILL', 'ID', String(await a.redis.client('ID')));
    await ready;
    // A new incarnation holding a's 3; the old field (2) is dead, and reaped by the next acquire.
    await eventually(
      async () => Object.values(await b.redis.hgetall(connKey(ip))),
      (counts) => counts.includes('3'),
    );
    expect(await b.limits.acquire(ip)).toBe('per_ip_limit');
    expect(Object.values(await b.redis.hgetall(connKey(ip)))).toEqual(['3']);
    expect(a.fallbacks).toEqual([]);
  });

  it('Redis down: answers promptly from local limits, reports the fallback, and recovers after a restart', async () => {
    const rate = { perSecond: 1, burst: 2 };
    const a = await replica('a', { connectRate: rate });
    const b = await replica('b', { connectRate: rate });
    const ip = '10.0.4.1';
    expect(await acquireN(a, ip, 2)).toEqual(['ok', 'ok']);

    await server.kill();
    const started = Date.now();
    expect(await a.limits.admitConnect(ip)).toEqual({ allowed: true });
    expect(await a.limits.acquire(ip)).toBe('ok');
    expect(await b.limits.acquire(ip)).toBe('ok');
    await b.limits.release(ip);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(a.fallbacks).toEqual([true]);
    expect(b.fallbacks).toEqual([true]);

    // The in-memory insurance limiters still apply the connect rate (never "over the limit" by error).
    expect(await a.limits.admitConnect(ip)).toEqual({ allowed: true });
    const local = await a.limits.admitConnect(ip);
    expect(local.allowed).toBe(false);
    // a gives one back during the outage: it holds 2 connections for ip when Redis returns.
    await a.limits.release(ip);

    await server.restart(); // empty: --save '' --appendonly no
    await eventually(
      () => [a.fallbacks.at(-1), b.fallbacks.at(-1)],
      ([x, y]) => x === false && y === false,
    );
    expect(a.fallbacks).toEqual([true, false]);
    expect(b.fallbacks).toEqual([true, false]);

    // Shared limits hold again, with a's live connections re-based into the fresh Redis.
    expect(await b.limits.acquire(ip)).toBe('ok');
    expect(await b.limits.acquire(ip)).toBe('per_ip_limit');
    expect(await a.limits.acquire(ip)).toBe('per_ip_limit');
    const rateIp = '10.0.4.2';
    expect(await a.limits.admitConnect(rateIp)).toEqual({ allowed: true });
    expect(await a.limits.admitConnect(rateIp)).toEqual({ allowed: true });
    expect((await b.limits.admitConnect(rateIp)).allowed).toBe(false);
  });
});
