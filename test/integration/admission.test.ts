import { afterEach, describe, expect, it } from 'vitest';
import {
  getFresh,
  readMetric,
  startTestGateway,
  type TestGateway,
  waitForMetric,
} from '../support/gateway.js';
import { silentWebSocket } from '../support/raw-socket.js';
import { attemptUpgrade, rawUpgrade } from '../support/upgrade.js';
import { TestClient } from '../support/ws-client.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

const port = () => gw!.gateway.port;

async function openFrom(localAddress: string, count: number, headers: Record<string, string> = {}) {
  const outcomes = [];
  for (let i = 0; i < count; i++) outcomes.push(await attemptUpgrade(port(), { localAddress, headers }));
  return outcomes;
}

const closeAll = (outcomes: { socket?: import('node:net').Socket }[]) =>
  Promise.all(
    outcomes.map(
      (o) =>
        new Promise<void>((resolve) => {
          if (!o.socket) return resolve();
          o.socket.once('close', () => resolve());
          o.socket.destroy();
        }),
    ),
  );

describe('connection admission', () => {
  it('WS_MAX_CONNECTIONS: the process-wide cap answers 503 with Retry-After', async () => {
    gw = await startTestGateway({ WS_MAX_CONNECTIONS: '3' });
    const held = await openFrom('127.0.0.1', 3);
    expect(held.map((o) => o.status)).toEqual([101, 101, 101]);
    const refused = await attemptUpgrade(port(), { localAddress: '127.0.0.2' });
    expect(refused.status).toBe(503);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(await gw.metric('ws_connections_rejected_total', 'reason="max_connections"')).toBe(1);
    await closeAll(held);
    await waitForMetric(gw, 'ws_active_connections', '', (v) => v === 0);
    expect((await attemptUpgrade(port())).status).toBe(101);
  });

  it.each([0, 2])(
    'WS_MAX_CONNECTIONS_PER_IP is exact (WS_WORKER_THREADS=%i) and per address',
    async (threads) => {
      gw = await startTestGateway({ WS_WORKER_THREADS: String(threads), WS_MAX_CONNECTIONS_PER_IP: '4' });
      const first = await openFrom('127.0.0.3', 6);
      expect(first.map((o) => o.status)).toEqual([101, 101, 101, 101, 429, 429]);
      expect(Number(first[4]!.retryAfter)).toBeGreaterThan(0);
      // Another address has its own allowance.
      const other = await openFrom('127.0.0.4', 4);
      expect(other.every((o) => o.status === 101)).toBe(true);
      const text = (await getFresh(`${gw.httpUrl}/metrics`)).body;
      expect(readMetric(text, 'ws_connections_rejected_total', 'reason="per_ip_limit"')).toBe(2);
      await closeAll([...first, ...other]);
      await waitForMetric(gw, 'ws_active_connections', '', (v) => v === 0);
      // Nothing leaked: the full allowance is back.
      const again = await openFrom('127.0.0.3', 4);
      expect(again.every((o) => o.status === 101)).toBe(true);
      await closeAll(again);
    },
  );

  it('the per-IP count never drifts: open/close cycles, abrupt drops, a worker restart', async () => {
    gw = await startTestGateway({ WS_WORKER_THREADS: '2', WS_MAX_CONNECTIONS_PER_IP: '3' });
    const url = gw.wsUrl;
    for (let i = 0; i < 60; i++) {
      const client = await TestClient.connect(url, { localAddress: '127.0.0.6' });
      if (i % 3 === 0) await client.terminate();
      else await client.close();
    }
    for (let i = 0; i < 20; i++) (await silentWebSocket(port(), '127.0.0.1', '127.0.0.6')).destroy();
    await waitForMetric(gw, 'ws_active_connections', '', (v) => v === 0);
    // Fill the allowance, kill a worker holding some of them: its counts go with it.
    const held = await Promise.all(
      [0, 1, 2].map(() => TestClient.connect(url, { localAddress: '127.0.0.6' })),
    );
    expect((await attemptUpgrade(port(), { localAddress: '127.0.0.6' })).status).toBe(429);
    await gw.gateway.injectWorkerFault(0);
    await waitForMetric(gw, 'ws_worker_restarts_total', 'reason="died"', (v) => v === 1);
    const survivors = held.filter((c) => c.socket.readyState === c.socket.OPEN);
    await Promise.all(held.filter((c) => !survivors.includes(c)).map((c) => c.closed));
    const refill = await openFrom('127.0.0.6', 3 - survivors.length);
    expect(refill.every((o) => o.status === 101)).toBe(true);
    expect((await attemptUpgrade(port(), { localAddress: '127.0.0.6' })).status).toBe(429);
    await closeAll(refill);
    await Promise.all(survivors.map((c) => c.close()));
  });

  it('WS_CONNECT_RATE_PER_IP: a burst past the limit gets 429 with Retry-After from the limiter', async () => {
    gw = await startTestGateway({
      WS_CONNECT_RATE_PER_IP: '2',
      WS_CONNECT_BURST_PER_IP: '4',
      WS_MAX_CONNECTIONS_PER_IP: '100',
    });
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, () => attemptUpgrade(port(), { localAddress: '127.0.0.7' })),
    );
    const accepted = outcomes.filter((o) => o.status === 101);
    const limited = outcomes.filter((o) => o.status === 429);
    expect(accepted).toHaveLength(4);
    expect(limited).toHaveLength(6);
    for (const o of limited) expect(Number(o.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(await gw.metric('ws_connections_rejected_total', 'reason="connect_rate"')).toBe(6);
    // Another address is not affected.
    expect((await attemptUpgrade(port(), { localAddress: '127.0.0.8' })).status).toBe(101);
    await closeAll(outcomes);
  });

  it('a client that disconnects mid-upgrade leaks no count and crashes nothing', async () => {
    gw = await startTestGateway({ WS_MAX_CONNECTIONS_PER_IP: '2' });
    const { connect } = await import('node:net');
    for (let i = 0; i < 50; i++) {
      const socket = connect({ port: port(), host: '127.0.0.1', localAddress: '127.0.0.10' });
      socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
      socket.destroy();
    }
    const after = await openFrom('127.0.0.10', 2);
    expect(after.map((o) => o.status)).toEqual([101, 101]);
    await closeAll(after);
  });
});

describe('the client address and X-Forwarded-For', () => {
  it('an untrusted peer cannot change its counted address with any header', async () => {
    gw = await startTestGateway({ WS_MAX_CONNECTIONS_PER_IP: '2', TRUSTED_PROXIES: '10.0.0.0/8' });
    const forged = [
      { 'x-forwarded-for': '1.1.1.1' },
      { 'x-forwarded-for': '2.2.2.2, 3.3.3.3' },
      { 'x-forwarded-for': 'garbage' },
      { 'x-real-ip': '4.4.4.4', forwarded: 'for=5.5.5.5' },
    ];
    const outcomes = [];
    for (const headers of forged)
      outcomes.push(await attemptUpgrade(port(), { localAddress: '127.0.0.11', headers }));
    expect(outcomes.map((o) => o.status)).toEqual([101, 101, 429, 429]);
    await closeAll(outcomes);
  });

  it('from a trusted proxy, the right-most untrusted hop is the client', async () => {
    gw = await startTestGateway({
      WS_MAX_CONNECTIONS_PER_IP: '1',
      TRUSTED_PROXIES: '127.0.0.12, 10.0.0.0/8, fd00::/8',
    });
    const via = (xff: string) =>
      attemptUpgrade(port(), { localAddress: '127.0.0.12', headers: { 'x-forwarded-for': xff } });
    const a = await via('203.0.113.7');
    expect(a.status).toBe(101);
    // The same client behind an inner trusted proxy, and with a spoofed left-most claim: still 203.0.113.7.
    expect((await via('203.0.113.7, 10.1.2.3')).status).toBe(429);
    expect((await via('1.2.3.4, 203.0.113.7')).status).toBe(429);
    // A different client through the same proxy has its own allowance; IPv6 works too.
    const b = await via('198.51.100.1');
    expect(b.status).toBe(101);
    const c = await via('2001:db8::1, fd00::5');
    expect(c.status).toBe(101);
    expect((await via('2001:DB8:0:0::1')).status).toBe(429);
    // Garbage stops the walk at the last trusted hop: the proxy itself is counted.
    const d = await via('not-an-ip');
    expect(d.status).toBe(101);
    expect((await via('also garbage')).status).toBe(429);
    await closeAll([a, b, c, d]);
  });

  it('reads every X-Forwarded-For line: a client line before the proxy-appended one cannot pick the address', async () => {
    gw = await startTestGateway({
      WS_MAX_CONNECTIONS_PER_IP: '1',
      TRUSTED_PROXIES: '127.0.0.13, 10.0.0.0/8',
    });
    const via = (...xff: string[]) =>
      rawUpgrade(
        port(),
        '127.0.0.13',
        xff.map((value) => `X-Forwarded-For: ${value}`),
      );
    // The client 203.0.113.9 sent its own line; the proxy appended the address it saw as a second line.
    const first = await via('1.1.1.1', '203.0.113.9');
    expect(first.status).toBe(101);
    // Any other claimed address in the client's line: still 203.0.113.9, over its cap of 1.
    expect((await via('2.2.2.2', '203.0.113.9')).status).toBe(429);
    expect((await via('3.3.3.3, 4.4.4.4', '203.0.113.9')).status).toBe(429);
    // Three lines: the client's, the edge proxy's, an inner trusted proxy's.
    expect((await via('5.5.5.5', '203.0.113.9', '10.1.2.3')).status).toBe(429);
    expect((await via('6.6.6.6', '203.0.113.9, 10.9.9.9', '10.1.2.3')).status).toBe(429);
    // Another client through the same proxies is counted under its own address.
    const second = await via('203.0.113.9', '198.51.100.20', '10.1.2.3');
    expect(second.status).toBe(101);
    expect((await via('198.51.100.20')).status).toBe(429);
    await closeAll([first, second]);
  });
});

describe('heartbeats and lifetimes', () => {
  it('a peer that stops answering pings is closed after WS_IDLE_TIMEOUT_S and counted as idle', async () => {
    gw = await startTestGateway({ WS_IDLE_TIMEOUT_S: '8', SUBSCRIBE_TIMEOUT_MS: '600000' });
    const silent = await silentWebSocket(port());
    const closed = new Promise<void>((resolve) => silent.once('close', () => resolve()));
    silent.resume();
    await closed;
    expect(await gw.metric('ws_disconnections_total', 'reason="idle"')).toBe(1);
  }, 20_000);

  it('a client that answers pings is kept past the idle timeout', async () => {
    gw = await startTestGateway({ WS_IDLE_TIMEOUT_S: '8', SUBSCRIBE_TIMEOUT_MS: '600000' });
    const client = await TestClient.connect(gw.wsUrl);
    // The ws package answers pings automatically; wait for two pings to have been answered.
    let pings = 0;
    await new Promise<void>((resolve) => client.socket.on('ping', () => ++pings === 2 && resolve()));
    expect(client.socket.readyState).toBe(client.socket.OPEN);
    await client.close();
  }, 30_000);

  it('WS_MAX_LIFETIME_MIN closes old connections with 4004, oldest first', async () => {
    gw = await startTestGateway({ WS_MAX_LIFETIME_MIN: '0.02' });
    const started = performance.now();
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['heartbeat'], ['BTC-USD']);
    const closed = await client.closed;
    expect(closed.code).toBe(4004);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_150);
    expect(await gw.metric('ws_disconnections_total', 'reason="max_lifetime"')).toBe(1);
  });
});
