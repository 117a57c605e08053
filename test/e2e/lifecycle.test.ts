import { describe, expect, it } from 'vitest';
import { runGateway, spawnGateway } from '../support/process.js';
import { TestClient } from '../support/ws-client.js';

describe('the built program as a process', () => {
  it('SIGTERM with clients attached: clients get 1001, exit code 0, no native abort', async () => {
    const gateway = await spawnGateway();
    const url = `ws://127.0.0.1:${gateway.port}/`;
    const clients = await Promise.all(Array.from({ length: 10 }, () => TestClient.connect(url)));
    for (const client of clients) client.subscribe(['level2', 'heartbeat', 'ticker'], ['BTC-USD', 'ETH-USD']);
    await Promise.all(clients.map((c) => c.nextOfType('snapshot')));

    gateway.child.kill('SIGTERM');
    const closes = await Promise.all(clients.map((c) => c.closed));
    expect(closes.map((c) => c.code)).toEqual(Array(10).fill(1001));
    const exit = await gateway.exited();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(gateway.stderr()).not.toMatch(/uv_loop_close|Assertion|Aborted/);
    expect(gateway.stdout()).toContain('"msg":"shutdown complete"');
  });

  it('a drain longer than SHUTDOWN_TIMEOUT_MS: the deadline closes the rest and exits 1', async () => {
    const gateway = await spawnGateway({ SHUTDOWN_TIMEOUT_MS: '400', DRAIN_SPREAD_MS: '20000' });
    const url = `ws://127.0.0.1:${gateway.port}/`;
    const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.connect(url)));
    gateway.child.kill('SIGTERM');
    const codes = (await Promise.all(clients.map((c) => c.closed))).map((c) => c.code);
    expect((await gateway.exited()).code).toBe(1);
    // The first slice left gracefully; the deadline cut the rest off.
    expect(codes.filter((c) => c === 1001).length).toBeGreaterThanOrEqual(1);
    expect(codes.filter((c) => c !== 1001).length).toBeGreaterThanOrEqual(1);
    expect(gateway.stdout()).toContain('shutdown deadline passed');
    expect(gateway.stderr()).not.toMatch(/uv_loop_close|Assertion|Aborted/);
  });

  it('a second signal during the drain exits 1 at once', async () => {
    const gateway = await spawnGateway({ SHUTDOWN_TIMEOUT_MS: '60000', DRAIN_SPREAD_MS: '60000' });
    const url = `ws://127.0.0.1:${gateway.port}/`;
    const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.connect(url)));
    gateway.child.kill('SIGTERM');
    await clients[0]!.closed;
    gateway.child.kill('SIGTERM');
    expect((await gateway.exited()).code).toBe(1);
  });

  it('DRAIN_SPREAD_MS spreads the 1001 closes over the window', async () => {
    const gateway = await spawnGateway({ DRAIN_SPREAD_MS: '500' });
    const url = `ws://127.0.0.1:${gateway.port}/`;
    const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.connect(url)));
    const started = performance.now();
    gateway.child.kill('SIGTERM');
    const closedAt = await Promise.all(clients.map((c) => c.closed.then(() => performance.now() - started)));
    expect(Math.max(...closedAt) - Math.min(...closedAt)).toBeGreaterThan(300);
    expect(await gateway.exited()).toEqual({ code: 0, signal: null });
  });

  for (const threads of ['0', '2']) {
    it(`DRAIN_SPREAD_MS closes 30 clients evenly over the window (WS_WORKER_THREADS=${threads})`, async () => {
      const windowMs = 4000;
      const gateway = await spawnGateway({
        WS_WORKER_THREADS: threads,
        DRAIN_SPREAD_MS: String(windowMs),
        SHUTDOWN_TIMEOUT_MS: '30000',
      });
      const url = `ws://127.0.0.1:${gateway.port}/`;
      const clients = await Promise.all(Array.from({ length: 30 }, () => TestClient.connect(url)));
      const started = performance.now();
      gateway.child.kill('SIGTERM');
      const closes = await Promise.all(
        clients.map((c) => c.closed.then(({ code }) => ({ code, at: performance.now() - started }))),
      );
      expect(closes.map((c) => c.code)).toEqual(Array(30).fill(1001));
      const times = closes.map((c) => c.at).sort((a, b) => a - b);
      console.log(
        `drain over ${windowMs} ms, ${threads} workers: closes at ${times.map(Math.round).join(', ')} ms`,
      );
      // Each thread closes its i-th of n connections at i/n of the window: the last ones come near
      // its end (not all within the first second), and every quarter of it has its share.
      expect(times.at(-1)! - times[0]!).toBeGreaterThan(0.8 * windowMs);
      for (let quarter = 0; quarter < 4; quarter++) {
        const inQuarter = times.filter((t) => t - times[0]! >= (quarter * windowMs) / 4);
        const before = times.filter((t) => t - times[0]! >= ((quarter + 1) * windowMs) / 4);
        expect(inQuarter.length - before.length, `quarter ${quarter + 1}`).toBeGreaterThanOrEqual(4);
      }
      expect(await gateway.exited()).toEqual({ code: 0, signal: null });
    }, 60_000);
  }

  it('SIGINT with nobody connected exits 0', async () => {
    const gateway = await spawnGateway();
    gateway.child.kill('SIGINT');
    expect(await gateway.exited()).toEqual({ code: 0, signal: null });
  });

  it('invalid configuration: one message listing every bad variable, exit code 2, nothing listens', async () => {
    const result = await runGateway({
      PORT: '99999',
      LOG_LEVEL: 'loud',
      PRODUCTS: 'BTC-USD,NOPE',
      WS_IDLE_TIMEOUT_S: '5',
      SIM_EVENTS_PER_SEC: '-1',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('invalid configuration (5 problems)');
    expect(result.stderr).toMatch(/PORT="99999" is invalid .*expected an integer from 0 to 65535/);
    expect(result.stderr).toMatch(/LOG_LEVEL="loud" is invalid .*expected one of fatal, error, warn, info/);
    expect(result.stderr).toMatch(/PRODUCTS="BTC-USD,NOPE" is invalid .*BASE-QUOTE/);
    expect(result.stderr).toMatch(/WS_IDLE_TIMEOUT_S="5" is invalid .*0 \(off\) or an integer from 8 to 960/);
    expect(result.stderr).toMatch(/SIM_EVENTS_PER_SEC="-1" is invalid/);
  });

  it('a REDIS_URL ioredis cannot use is a configuration error naming REDIS_URL, exit 2', async () => {
    for (const [url, why] of [
      ['redis://127.0.0.1:99999', 'port out of range (1-65535)'],
      ['redis://127.0.0.1:1/abc', 'database "abc" is not an integer from 0 to 2147483647'],
    ]) {
      const result = await runGateway({ FEED_SOURCE: 'redis', REDIS_URL: url!, PORT: '0' });
      expect(result.code, url).toBe(2);
      expect(result.stderr).toContain(
        `REDIS_URL="${url}" is invalid (${why}): expected a redis:// or rediss://`,
      );
      expect(result.stderr).not.toMatch(/Invalid URL|\n\s+at /);
    }
  });

  it('refuses to start on the pure-JS uWS fallback', async () => {
    const result = await runGateway({ UWS_USE_FALLBACK: '1', PORT: '0' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/native binary is not in use.*Node\.js 16, 18 or 20/);
  });
});
