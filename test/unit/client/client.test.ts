import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MatchbookClient } from '../../../src/client/client.js';
import type { WebSocketLike } from '../../../src/client/socket.js';

/**
 * A scripted stand-in for the network, so fake timers can drive the client's scheduling exactly;
 * the same behaviour against the real gateway is tested in test/integration/client-*.test.ts.
 */
class ScriptedSocket implements WebSocketLike {
  static made: ScriptedSocket[] = [];
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { readonly data: unknown }) => void) | null = null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: Record<string, unknown>[] = [];
  readonly createdAt = Date.now();
  closedWith: number | undefined;

  constructor(readonly url: string) {
    ScriptedSocket.made.push(this);
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000): void {
    this.closedWith = code;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

const latest = () => ScriptedSocket.made.at(-1)!;
const snapshot = (sequence: number) => ({
  type: 'snapshot',
  product_id: 'BTC-USD',
  bids: [['99.00', '1']],
  asks: [['101.00', '1']],
  sequence,
  time: '',
});
const update = (sequence: number) => ({
  type: 'l2update',
  product_id: 'BTC-USD',
  changes: [['buy', '98.00', '1']],
  time: '',
  sequence,
});

function makeClient(random = () => 0.5) {
  return new MatchbookClient({
    url: 'ws://gateway.test/',
    WebSocket: ScriptedSocket,
    random,
    reconnect: { floorMs: 500, capMs: 20_000, healthyAfterMs: 10_000, routineJitterMs: 1_000 },
    staleAfterMs: 3_000,
    deadAfterMs: 6_000,
  });
}

beforeEach(() => {
  vi.useFakeTimers();
  ScriptedSocket.made = [];
});
afterEach(() => {
  vi.useRealTimers();
});

describe('MatchbookClient scheduling (fake timers)', () => {
  it('gateway down: one attempt at a time, each after its growing backoff delay, never sooner', () => {
    const client = makeClient(() => 1);
    const delays: number[] = [];
    client.on('disconnected', (e) => delays.push(e.retryInMs!));
    for (let attempt = 0; attempt < 8; attempt++) {
      expect(ScriptedSocket.made).toHaveLength(attempt + 1);
      latest().serverClose(1006);
      const delay = delays.at(-1)!;
      vi.advanceTimersByTime(delay - 1);
      expect(ScriptedSocket.made).toHaveLength(attempt + 1);
      vi.advanceTimersByTime(1);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000]);
    expect(client.state).toBe('reconnecting');
    client.close();
  });

  it('a routine close (1001) after a healthy connection reconnects within the short jitter, and resubscribes everything', () => {
    const client = makeClient();
    client.subscribe('level2', 'BTC-USD');
    client.subscribe('ticker', 'ETH-USD');
    latest().open();
    expect(latest().sent).toEqual([
      {
        type: 'subscribe',
        channels: [
          { name: 'level2', product_ids: ['BTC-USD'] },
          { name: 'ticker', product_ids: ['ETH-USD'] },
          { name: 'heartbeat', product_ids: ['BTC-USD'] },
        ],
      },
    ]);
    latest().receive(snapshot(5));
    for (let second = 0; second < 10; second++) {
      vi.advanceTimersByTime(1_000);
      latest().receive({ type: 'heartbeat', product_id: 'BTC-USD', sequence: 5, last_trade_id: 0, time: '' });
    }
    const stale: string[] = [];
    client.on('stale', (e) => stale.push(e.reason));
    latest().serverClose(1001);
    expect(stale).toEqual(['disconnected']);
    expect(client.book('BTC-USD')!.synced).toBe(false);
    vi.advanceTimersByTime(500);
    expect(ScriptedSocket.made).toHaveLength(2);
    latest().open();
    expect(latest().sent[0]).toEqual(ScriptedSocket.made[0]!.sent[0]);
    client.close();
  });

  it('a stop code (4001) ends the client: no further attempt', () => {
    const client = makeClient();
    client.subscribe('ticker', 'BTC-USD');
    latest().open();
    const events: unknown[] = [];
    client.on('disconnected', (e) => events.push(e));
    latest().serverClose(4001, 'Failed to subscribe');
    vi.advanceTimersByTime(120_000);
    expect(ScriptedSocket.made).toHaveLength(1);
    expect(client.state).toBe('closed');
    expect(events).toEqual([
      { code: 4001, reason: 'Failed to subscribe', willReconnect: false, retryInMs: undefined },
    ]);
  });

  it('a gap resynchronises that product alone, at once, then with its own backoff', () => {
    const client = makeClient(() => 1);
    client.subscribe('level2', 'BTC-USD');
    client.subscribe('matches', 'BTC-USD');
    latest().open();
    const socket = latest();
    socket.sent.length = 0;
    socket.receive(snapshot(10));
    socket.receive(update(12));
    expect(client.book('BTC-USD')!.synced).toBe(false);
    vi.advanceTimersByTime(0);
    const pair = [{ name: 'level2', product_ids: ['BTC-USD'] }];
    expect(socket.sent).toEqual([
      { type: 'unsubscribe', channels: pair },
      { type: 'subscribe', channels: pair },
    ]);
    socket.receive(snapshot(20));
    expect(client.book('BTC-USD')!.synced).toBe(true);
    socket.receive(update(22));
    vi.advanceTimersByTime(499);
    expect(socket.sent).toHaveLength(2);
    vi.advanceTimersByTime(1001);
    expect(socket.sent).toHaveLength(4);
    expect(ScriptedSocket.made).toHaveLength(1);
    client.close();
  });

  it('the watchdog: heartbeat silence makes the book stale, total silence reconnects', () => {
    const client = makeClient();
    client.subscribe('level2', 'BTC-USD');
    latest().open();
    latest().receive(snapshot(1));
    const stale: string[] = [];
    client.on('stale', (e) => stale.push(e.reason));
    vi.advanceTimersByTime(3_750);
    expect(stale).toEqual(['heartbeat']);
    expect(ScriptedSocket.made).toHaveLength(1);
    vi.advanceTimersByTime(3_000);
    expect(client.state).toBe('reconnecting');
    expect(ScriptedSocket.made[0]!.closedWith).toBe(4000);
    client.close();
  });

  it('without heartbeats or pings (a browser, tickers only), a quiet market is not taken for a dead link', () => {
    const client = makeClient();
    client.subscribe('ticker', 'BTC-USD');
    latest().open();
    vi.advanceTimersByTime(60_000);
    expect(client.state).toBe('open');
    expect(ScriptedSocket.made).toHaveLength(1);
    client.close();
  });

  it('a subscription is an async iterable; matches overflow ends it with an error', async () => {
    const client = new MatchbookClient({
      url: 'ws://gateway.test/',
      WebSocket: ScriptedSocket,
      bufferSize: 2,
    });
    const matches = client.subscribe('matches', 'BTC-USD');
    latest().open();
    const iterator = matches[Symbol.asyncIterator]();
    const trade = (n: number) => ({ type: 'match', product_id: 'BTC-USD', trade_id: n, sequence: n });
    latest().receive(trade(1));
    expect((await iterator.next()).value).toMatchObject({ trade_id: 1 });
    for (let n = 2; n <= 4; n++) latest().receive(trade(n));
    expect((await iterator.next()).value).toMatchObject({ trade_id: 2 });
    expect((await iterator.next()).value).toMatchObject({ trade_id: 3 });
    await expect(iterator.next()).rejects.toThrow(/fell 2 messages behind/);
    client.close();
  });
});
