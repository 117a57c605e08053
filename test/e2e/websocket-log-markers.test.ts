import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startTestGateway } from '../support/gateway.js';
import { spawnGateway } from '../support/process.js';
import { silentWebSocket } from '../support/raw-socket.js';
import { stallReading } from '../support/stall.js';
import { attemptUpgrade } from '../support/upgrade.js';
import { TestClient } from '../support/ws-client.js';

/** The runbook's own filter: `kubectl logs deployment/api -n matchbook --tail=100 | grep -i websocket`. */
function grepWebsocket(logs: string): string[] {
  const grep = spawnSync('grep', ['-i', 'websocket'], { input: logs, encoding: 'utf8' });
  return grep.stdout.split('\n').filter((line) => line.length > 0);
}

function messages(lines: readonly string[]): string[] {
  return lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
}

describe("the runbook's grep -i websocket", () => {
  it('finds rejected upgrades, slow-consumer, flood and idle disconnects and the drain, once per reason', async () => {
    const gateway = await spawnGateway({
      WS_WORKER_THREADS: '1',
      SIM_EVENTS_PER_SEC: '2500',
      WS_BACKPRESSURE_HIGH_BYTES: '65536',
      WS_MAX_BACKPRESSURE_BYTES: '2097152',
      WS_SLOW_QUEUE_MAX_MESSAGES: '200000',
      WS_SLOW_CONSUMER_TIMEOUT_MS: '800',
      WS_MESSAGE_RATE: '20',
      WS_MESSAGE_BURST: '30',
      WS_IDLE_TIMEOUT_S: '8',
      SUBSCRIBE_TIMEOUT_MS: '600000',
      WS_MAX_CONNECTIONS_PER_IP: '2',
    });
    const url = `ws://127.0.0.1:${gateway.port}/`;
    // A healthy client receiving a fast feed the whole time: nothing is logged per message.
    const healthy = await TestClient.connect(url, { localAddress: '127.0.0.2' });
    healthy.subscribe(['level2', 'matches'], ['BTC-USD', 'ETH-USD']);
    await healthy.nextOfType('snapshot');

    // Rejected upgrades: the per-IP limit, three times (one line: sampled per reason).
    const holders = await Promise.all(
      [1, 2].map(() => TestClient.connect(url, { localAddress: '127.0.0.3' })),
    );
    for (let i = 0; i < 3; i++)
      expect((await attemptUpgrade(gateway.port, { localAddress: '127.0.0.3' })).status).toBe(429);

    // Floods, twice (one line).
    for (const address of ['127.0.0.4', '127.0.0.5']) {
      const flooder = await TestClient.connect(url, { localAddress: address });
      for (let i = 0; i < 200; i++) flooder.send('{"type":"subscribe"}');
      expect((await flooder.closed).code).toBe(4003);
    }

    // A slow consumer cut off after WS_SLOW_CONSUMER_TIMEOUT_MS.
    const slow = await TestClient.connect(url, { localAddress: '127.0.0.6' });
    slow.subscribe(['level2', 'matches'], ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC']);
    await slow.nextOfType('snapshot');
    stallReading(slow);

    // A peer that never answers pings, closed after WS_IDLE_TIMEOUT_S.
    const silent = await silentWebSocket(gateway.port, '127.0.0.1', '127.0.0.7');
    const idleClosed = new Promise<void>((resolve) => silent.once('close', () => resolve()));
    silent.resume();
    await idleClosed;
    await until(() => gateway.stdout().includes('websocket closed: slow_consumer'));

    gateway.child.kill('SIGTERM');
    expect((await healthy.closed).code).toBe(1001);
    await Promise.all(holders.map((h) => h.closed));
    expect(await gateway.exited()).toEqual({ code: 0, signal: null });

    const found = grepWebsocket(gateway.stdout());
    expect(messages(found).sort()).toEqual(
      [
        'websocket upgrade rejected: per_ip_limit',
        'websocket closed: flood',
        'websocket closed: slow_consumer',
        'websocket closed: idle',
        'websocket drain: closing every connection with 1001 (going away)',
      ].sort(),
    );
    const rejected = JSON.parse(found.find((l) => l.includes('upgrade rejected'))!) as Record<
      string,
      unknown
    >;
    expect(rejected).toMatchObject({ level: 40, reason: 'per_ip_limit', status: '429', suppressed: 0 });
  }, 60_000);

  it('finds worker restarts (the worker fault seam is in-process: pino output captured)', async () => {
    let logs = '';
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logs += chunk;
        done();
      },
    });
    const gw = await startTestGateway(
      { WS_WORKER_THREADS: '2', WS_WORKER_STALL_MS: '2000' },
      pino({ level: 'info' }, sink),
    );
    try {
      // injectWorkerFault resolves once the replacement listens.
      await gw.gateway.injectWorkerFault(0, 'crash');
      await gw.gateway.injectWorkerFault(1, 'hang');
    } finally {
      await gw.stop();
    }
    const found = messages(grepWebsocket(logs));
    const count = (text: string) => found.filter((m) => m === text).length;
    const died = 'websocket worker thread died; its clients were disconnected; replacing it';
    const stuck = 'websocket worker thread is stuck; closing its connections and replacing it';
    expect(count(died)).toBe(1);
    // A loaded machine can also stall a healthy worker past WS_WORKER_STALL_MS: a real restart, logged too.
    expect(count(stuck)).toBeGreaterThanOrEqual(1);
    const replaced = 'replacement websocket worker listening';
    // Both injected faults were awaited until their replacement listened.
    expect(count(replaced)).toBeGreaterThanOrEqual(2);
    expect(found.filter((m) => m !== died && m !== stuck && m !== replaced)).toEqual([]);
  }, 30_000);
});

/**
 * Waits for a log line that follows a server-side event no client observes (the slow consumer is
 * stalled and cannot read its close): output is re-read every 20 ms until a bound.
 */
async function until(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`not seen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
