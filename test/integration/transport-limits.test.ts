import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Transport as TransportType } from '../../src/server/transport.js';
import {
  type StartedTransport,
  startTransport as startSupportTransport,
} from '../support/built-transport.js';
import { readMetric } from '../support/gateway.js';
import { resumeReading, stallReading } from '../support/stall.js';
import { TestClient } from '../support/ws-client.js';

const MAX_BACKPRESSURE = 65_536;
/** Far more than the kernel's socket buffers and uWS's limit together: the burst must pass the limit. */
const BURST_BYTES = 64 * 1024 * 1024;
const MATCH = JSON.stringify({ type: 'match', product_id: 'BTC-USD', padding: 'x'.repeat(1000) });

let transport: TransportType | undefined;
afterEach(() => {
  transport?.close();
  transport = undefined;
});

/** Started through the support helper; closed after each test. */
async function startTransport(env: Record<string, string>, logger?: Logger): Promise<StartedTransport> {
  const started = await startSupportTransport({ env, ...(logger ? { logger } : {}) });
  transport = started.transport;
  return started;
}

describe('a client cut by uWS at maxBackpressure between two sweeps', () => {
  it('is counted as a slow consumer (backpressure_limit), not as a network error', async () => {
    const {
      transport: live,
      port,
      metrics,
    } = await startTransport({
      WS_BACKPRESSURE_HIGH_BYTES: '16384',
      WS_MAX_BACKPRESSURE_BYTES: String(MAX_BACKPRESSURE),
      // No sweep between the burst and uWS's close: the sweeps only ever saw an empty buffer.
      WS_BACKPRESSURE_CHECK_MS: '1000',
    });
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    client.subscribe(['matches'], ['BTC-USD']);
    await client.nextOfType('subscriptions');
    stallReading(client);

    // One turn, as a burst of upstream events is published: uWS passes its limit in it, drops the
    // rest and closes the socket before any sweep can look.
    for (let sent = 0; sent < BURST_BYTES; sent += MATCH.length)
      live.publish('matches:BTC-USD', 'matches', MATCH, Date.now());
    resumeReading(client);
    await client.closed;

    const text = await metrics();
    expect(readMetric(text, 'ws_disconnections_total', 'reason="error"') ?? 0).toBe(0);
    expect(readMetric(text, 'ws_disconnections_total', 'reason="slow_consumer"')).toBe(1);
    expect(readMetric(text, 'ws_slow_consumer_disconnects_total', 'reason="backpressure_limit"')).toBe(1);
  });
});

describe('a listen socket the accept guard cannot reopen', () => {
  it('is retried until it reopens, with ws_listen_paused at 1 and an error logged meanwhile', async () => {
    const lines: string[] = [];
    let reopened: () => void = () => {};
    const reopenedLogged = new Promise<void>((resolve) => {
      reopened = resolve;
    });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        const line = chunk.toString();
        lines.push(line);
        if (line.includes('websocket listener reopened after failed attempts')) reopened();
        done();
      },
    });
    const { transport: live, port, metrics } = await startTransport({}, pino({ level: 'info' }, sink));
    live.pauseListening();
    // Something else takes the port meanwhile (without SO_REUSEPORT, so uWS cannot share it).
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    live.resumeListening();
    expect(live.reopenFailing).toBe(true);
    expect(readMetric(await metrics(), 'ws_listen_paused')).toBe(1);
    expect(lines.some((l) => l.includes('websocket listener could not be reopened'))).toBe(true);

    await new Promise<void>((resolve) => squatter.close(() => resolve()));
    await reopenedLogged;
    expect(live.reopenFailing).toBe(false);
    expect(readMetric(await metrics(), 'ws_listen_paused')).toBe(0);
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    client.subscribe(['matches'], ['BTC-USD']);
    await client.nextOfType('subscriptions');
    await client.close();
  });
});
