import { afterEach, describe, expect, it } from 'vitest';
import { getFresh, readMetric } from '../support/gateway.js';
import { type GatewayProcess, spawnGateway } from '../support/process.js';
import { type RedisProcess, startRedis } from '../support/redis-server.js';
import { attemptUpgrade } from '../support/upgrade.js';

let redis: RedisProcess | undefined;
const gateways: GatewayProcess[] = [];
afterEach(async () => {
  for (const g of gateways.splice(0)) {
    g.child.kill('SIGKILL');
    await g.exited();
  }
  await redis?.stop();
});

const replica = async (url: string) => {
  const g = await spawnGateway({
    LIMITS_STORE: 'redis',
    REDIS_URL: url,
    WS_MAX_CONNECTIONS_PER_IP: '3',
    WS_WORKER_THREADS: '1',
    // Raw upgrades never subscribe: keep them open for the whole test.
    SUBSCRIBE_TIMEOUT_MS: '600000',
  });
  gateways.push(g);
  return g;
};

describe('LIMITS_STORE=redis: per-IP limits across replicas (processes, real Redis)', () => {
  it('the per-IP limit holds across two replicas; a replica killed with kill -9 leaves no counts behind after the expiry', async () => {
    redis = await startRedis();
    const [a, b] = [await replica(redis.url), await replica(redis.url)];
    const from = '127.0.0.20';
    const onA = [
      await attemptUpgrade(a!.port, { localAddress: from }),
      await attemptUpgrade(a!.port, { localAddress: from }),
    ];
    const onB = await attemptUpgrade(b!.port, { localAddress: from });
    expect([...onA, onB].map((o) => o.status)).toEqual([101, 101, 101]);
    const refusedA = await attemptUpgrade(a!.port, { localAddress: from });
    const refusedB = await attemptUpgrade(b!.port, { localAddress: from });
    expect([refusedA.status, refusedB.status]).toEqual([429, 429]);
    expect(Number(refusedB.retryAfter)).toBeGreaterThan(0);

    a!.child.kill('SIGKILL');
    await a!.exited();
    // A's two connections stop counting once its liveness key expires (15 s, documented).
    const killedAt = performance.now();
    const held = [];
    for (;;) {
      const attempt = await attemptUpgrade(b!.port, { localAddress: from });
      if (attempt.status === 101) {
        held.push(attempt);
        break;
      }
      expect(performance.now() - killedAt).toBeLessThan(20_000);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    held.push(await attemptUpgrade(b!.port, { localAddress: from }));
    expect(held.map((o) => `${o.status} ${o.reason ?? ''}`)).toEqual(['101 ', '101 ']);
    expect((await attemptUpgrade(b!.port, { localAddress: from })).status).toBe(429);
    for (const o of [onB, ...held]) o.socket?.destroy();
  }, 40_000);

  it('Redis unavailable: local limits apply, the fallback is in a metric, and clients are still accepted', async () => {
    redis = await startRedis();
    const g = await replica(redis.url);
    await redis.kill();
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push(await attemptUpgrade(g.port, { localAddress: '127.0.0.21' }));
    expect(outcomes.map((o) => o.status)).toEqual([101, 101, 101]);
    // The local per-IP table still holds the line.
    expect((await attemptUpgrade(g.port, { localAddress: '127.0.0.21' })).status).toBe(429);
    const text = (await getFresh(`http://127.0.0.1:${g.port}/metrics`)).body;
    expect(readMetric(text, 'ws_limits_store_fallback')).toBe(1);
    for (const o of outcomes) o.socket?.destroy();
  }, 30_000);
});
