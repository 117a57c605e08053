import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { MatchbookClient } from '../../src/client/client.js';
import { startTestGateway, type TestGateway, waitForMetric } from '../support/gateway.js';
import { expectBookEqualsRest, nextEvent, recordBooks, recordingWebSocket, sdk } from '../support/sdk.js';
import { TestClient } from '../support/ws-client.js';

let gw: TestGateway | undefined;
const clients: MatchbookClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await gw?.stop();
  gw = undefined;
});

function client(url: string, options: Partial<ConstructorParameters<typeof sdk.MatchbookClient>[0]> = {}) {
  const made = new sdk.MatchbookClient({ url, ...options });
  clients.push(made);
  return made;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('client SDK against the real gateway', () => {
  it('keeps a book equal to the REST book at the same sequence', async () => {
    gw = await startTestGateway({ SIM_EVENTS_PER_SEC: '300' });
    const ws = recordingWebSocket();
    const c = client(gw.wsUrl, { WebSocket: ws.WebSocket });
    c.subscribe('level2', 'BTC-USD');
    const books = recordBooks(c, 'BTC-USD');
    await nextEvent(c, 'synced');
    for (let round = 0; round < 3; round++) await expectBookEqualsRest(c, books, gw.httpUrl, 'BTC-USD');
  });

  it('stalled into a slow-consumer disconnect (4002), it reconnects with backoff and recovers a correct book', async () => {
    gw = await startTestGateway({
      SIM_EVENTS_PER_SEC: '2500',
      WS_BACKPRESSURE_HIGH_BYTES: '65536',
      WS_MAX_BACKPRESSURE_BYTES: '2097152',
      WS_SLOW_QUEUE_MAX_MESSAGES: '200000',
      WS_SLOW_CONSUMER_TIMEOUT_MS: '800',
    });
    const ws = recordingWebSocket();
    // The watchdog must not end the stalled connection first: this is about the gateway's 4002.
    const c = client(gw.wsUrl, {
      WebSocket: ws.WebSocket,
      reconnect: { floorMs: 200, capMs: 2_000 },
      staleAfterMs: 30_000,
      deadAfterMs: 60_000,
    });
    for (const product of ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC']) c.subscribe('level2', product);
    c.subscribe('matches', 'BTC-USD');
    const books = recordBooks(c, 'ETH-USD');
    await nextEvent(c, 'synced', (e) => e.product === 'ETH-USD');
    const tcp = (ws.sockets[0]!.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    const disconnected = nextEvent(c, 'disconnected', () => true, 30_000);
    const stale = nextEvent(
      c,
      'stale',
      (e) => e.product === 'ETH-USD' && e.reason === 'disconnected',
      30_000,
    );
    tcp.pause();
    await waitForMetric(gw, 'ws_slow_consumer_disconnects_total', 'reason="timeout"', (v) => v === 1);
    tcp.resume();
    expect(await disconnected).toMatchObject({ code: 4002, willReconnect: true });
    await stale;
    expect(c.book('ETH-USD')!.view()).toEqual({ synced: false, reason: 'disconnected' });
    await nextEvent(c, 'synced', (e) => e.product === 'ETH-USD');
    expect(ws.sockets).toHaveLength(2);
    expect(c.state).toBe('open');
    await expectBookEqualsRest(c, books, gw.httpUrl, 'ETH-USD');
  }, 40_000);

  it('a gateway that is down: attempts are spread by the backoff, bounded and jittered, never a tight loop', async () => {
    const port = await freePort();
    const windowMs = 8_000;
    const recorders = Array.from({ length: 10 }, () => recordingWebSocket());
    const started = performance.now();
    for (const ws of recorders) {
      client(`ws://127.0.0.1:${port}/`, {
        WebSocket: ws.WebSocket,
        reconnect: { floorMs: 500, capMs: 20_000 },
      });
    }
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const counts = recorders.map((r) => r.sockets.filter((s) => s.at - started <= windowMs).length);
    const gaps = recorders.flatMap((r) => r.sockets.slice(1).map((s, i) => s.at - r.sockets[i]!.at));
    // Sum of the n-th delays is at least n × floor; with doubling ceilings it is usually far more.
    for (const count of counts) {
      expect(count).toBeGreaterThanOrEqual(2);
      expect(count).toBeLessThanOrEqual(1 + windowMs / 500);
    }
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(495);
    expect(
      new Set(counts.map(String)).size + new Set(gaps.map((g) => Math.round(g / 10))).size,
    ).toBeGreaterThan(5);
    const total = counts.reduce((a, b) => a + b, 0);
    expect(total / counts.length).toBeLessThan(8);
  }, 20_000);

  it('429 with Retry-After: the next attempt waits at least that long', async () => {
    gw = await startTestGateway({ WS_MAX_CONNECTIONS_PER_IP: '1' });
    const holder = await TestClient.connect(gw.wsUrl);
    const ws = recordingWebSocket();
    const c = client(gw.wsUrl, { WebSocket: ws.WebSocket, reconnect: { floorMs: 50, capMs: 200 } });
    c.subscribe('ticker', 'BTC-USD');
    const refused = await nextEvent(c, 'disconnected');
    expect(refused).toMatchObject({
      code: 1006,
      reason: 'upgrade refused with HTTP 429',
      willReconnect: true,
    });
    expect(refused.retryInMs).toBeGreaterThanOrEqual(5_000);
    await holder.close();
    await nextEvent(c, 'state', (s) => s === 'open', 10_000);
    expect(ws.sockets).toHaveLength(2);
    expect(ws.sockets[1]!.at - ws.sockets[0]!.at).toBeGreaterThanOrEqual(5_000);
  }, 20_000);
});
