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
/** Far more than the kernel's socket buffers and uWS's limit together: the burst would pass the limit. */
const BURST_BYTES = 64 * 1024 * 1024;
const PADDING = 'x'.repeat(1000);
const match = (tradeId: number) =>
  JSON.stringify({ type: 'match', trade_id: tradeId, product_id: 'BTC-USD', padding: PADDING });

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

describe('a one-turn burst far past the hard limit of uWS to a client that stopped reading', () => {
  it('takes it off its topics before the limit: matches in order, then ErrSlowConsume and 4002; never a cut or an error', async () => {
    const {
      transport: live,
      port,
      metrics,
    } = await startTransport({
      WS_BACKPRESSURE_HIGH_BYTES: '16384',
      WS_MAX_BACKPRESSURE_BYTES: String(MAX_BACKPRESSURE),
      // No timer sweep during the burst: only the transport's byte-counted looks can intervene.
      WS_BACKPRESSURE_CHECK_MS: '1000',
    });
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    client.subscribe(['matches'], ['BTC-USD']);
    await client.nextOfType('subscriptions');
    stallReading(client);

    // One turn, as a burst of upstream events is published. Without the looks, uWS passes its
    // limit in it, drops a message and closes the socket (a gap, then 1006).
    let tradeId = 0;
    for (let sent = 0; sent < BURST_BYTES; sent += PADDING.length)
      live.publish('matches:BTC-USD', 'matches', match(++tradeId), Date.now());
    resumeReading(client);
    const { code } = await client.closed;

    expect(code).toBe(4002);
    expect(client.messages.at(-1)).toMatchObject({ type: 'error', message: 'ErrSlowConsume' });
    const ids = client.messages.filter((m) => m.type === 'match').map((m) => m.trade_id as number);
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.every((id, i) => id === i + 1)).toBe(true);
    const text = await metrics();
    expect(readMetric(text, 'ws_disconnections_total', 'reason="error"') ?? 0).toBe(0);
    expect(readMetric(text, 'ws_disconnections_total', 'reason="slow_consumer"')).toBe(1);
    expect(readMetric(text, 'ws_slow_consumer_disconnects_total', 'reason="backpressure_limit"') ?? 0).toBe(
      0,
    );
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
