import { describe, expect, it } from 'vitest';
import { getFresh, readMetric } from '../support/gateway.js';
import { spawnGateway } from '../support/process.js';
import { stallReading } from '../support/stall.js';
import { TestClient } from '../support/ws-client.js';

const STALLED = 20;
const MAX_BACKPRESSURE = 2 * 1024 * 1024;
const QUEUE = 2000;

describe('memory stays bounded with stalled clients (the gateway as a process)', () => {
  it(`${STALLED} clients that stop reading cost at most maxBackpressure + queue each, then are cut off`, async () => {
    const gateway = await spawnGateway({
      WS_WORKER_THREADS: '0',
      SIM_EVENTS_PER_SEC: '2000',
      WS_BACKPRESSURE_HIGH_BYTES: '65536',
      WS_MAX_BACKPRESSURE_BYTES: String(MAX_BACKPRESSURE),
      WS_SLOW_QUEUE_MAX_MESSAGES: String(QUEUE),
      WS_SLOW_CONSUMER_TIMEOUT_MS: '1500',
    });
    const base = `http://127.0.0.1:${gateway.port}`;
    const scrape = async () => (await getFresh(`${base}/metrics`)).body;
    const clients = await Promise.all(
      Array.from({ length: STALLED }, () => TestClient.connect(`ws://127.0.0.1:${gateway.port}/`)),
    );
    for (const c of clients)
      c.subscribe(['level2', 'matches', 'ticker'], ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC']);
    await Promise.all(clients.map((c) => c.nextOfType('snapshot')));
    const before = readMetric(await scrape(), 'process_resident_memory_bytes')!;
    for (const c of clients) stallReading(c);

    // Every stalled client ends disconnected (queue overflow or timeout); sample memory meanwhile.
    let peak = before;
    let peakQueue = 0;
    const closes = Promise.all(clients.map((c) => c.closed));
    let done = false;
    void closes.then(() => {
      done = true;
    });
    while (!done) {
      const text = await scrape();
      peak = Math.max(peak, readMetric(text, 'process_resident_memory_bytes')!);
      peakQueue = Math.max(peakQueue, readMetric(text, 'ws_message_queue_size')!);
      // Once the server holds none of them, let the clients read what is left (the error, the close).
      if (readMetric(text, 'ws_active_connections') === 0) {
        for (const c of clients) (c.socket as unknown as { _socket: { resume(): void } })._socket.resume();
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const codes = (await closes).map((c) => c.code);
    expect(codes.every((code) => code === 4002 || code === 1006)).toBe(true);
    const after = await scrape();
    expect(readMetric(after, 'ws_message_queue_size')).toBe(0);
    expect(readMetric(after, 'ws_slow_consumers')).toBe(0);
    expect(readMetric(after, 'ws_active_connections')).toBe(0);
    // Stated bound: per stalled client its uWS buffer (maxBackpressure) plus a full queue of ~400-byte messages.
    const bound = STALLED * (MAX_BACKPRESSURE + QUEUE * 400);
    console.log(
      `stalled clients: RSS before ${(before / 1e6).toFixed(1)} MB, peak ${(peak / 1e6).toFixed(1)} MB ` +
        `(growth ${((peak - before) / 1e6).toFixed(1)} MB, bound ${(bound / 1e6).toFixed(1)} MB), peak queue ${peakQueue}`,
    );
    expect(peak - before).toBeLessThan(bound + 32 * 1024 * 1024);
    gateway.child.kill('SIGTERM');
    expect((await gateway.exited()).code).toBe(0);
  }, 60_000);
});
