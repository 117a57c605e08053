import { beforeEach, describe, expect, it } from 'vitest';
import type { Channel } from '../../../src/market/types.js';
import {
  type FlowConnection,
  FlowControl,
  type FlowObserver,
  type SlowDisconnectReason,
} from '../../../src/server/flow-control.js';

// --- fakes -------------------------------------------------------------------------------------

type Call =
  | ['subscribe', string]
  | ['unsubscribe', string]
  | ['sendPiece', string[]]
  | ['resnapshot', string]
  | ['disconnectSlow', SlowDisconnectReason];

/** A connection as flow control sees it: records every call, with a settable buffer and topics. */
class FakeConnection implements FlowConnection {
  buffered = 0;
  readonly subscribed: string[];
  readonly calls: Call[] = [];

  constructor(topics: readonly string[] = []) {
    this.subscribed = [...topics];
  }

  bufferedAmount(): number {
    return this.buffered;
  }

  topics(): readonly string[] {
    return [...this.subscribed];
  }

  unsubscribe(topic: string): void {
    const index = this.subscribed.indexOf(topic);
    if (index >= 0) this.subscribed.splice(index, 1);
    this.calls.push(['unsubscribe', topic]);
  }

  subscribe(topic: string): void {
    if (!this.subscribed.includes(topic)) this.subscribed.push(topic);
    this.calls.push(['subscribe', topic]);
  }

  /** A socket whose kernel buffers are full keeps what it is given: buffered grows by it. */
  keepsSent = false;
  /** uWS's hard limit: the next send is dropped. */
  dropping = false;

  sendPiece(payloads: readonly string[]): boolean {
    this.calls.push(['sendPiece', [...payloads]]);
    if (this.dropping) return false;
    if (this.keepsSent) this.buffered += payloads.join('').length;
    return true;
  }

  resnapshot(topic: string): void {
    this.calls.push(['resnapshot', topic]);
  }

  disconnectSlow(reason: SlowDisconnectReason): void {
    this.calls.push(['disconnectSlow', reason]);
  }

  callsOf<K extends Call[0]>(kind: K): Extract<Call, [K, unknown]>[1][] {
    return this.calls.filter((c) => c[0] === kind).map((c) => c[1]) as Extract<Call, [K, unknown]>[1][];
  }

  clear(): void {
    this.calls.length = 0;
  }
}

class RecordingObserver implements FlowObserver {
  readonly slowDeltas: number[] = [];
  readonly conflations: Channel[] = [];
  readonly disconnects: SlowDisconnectReason[] = [];

  slowConsumersChanged(delta: number): void {
    this.slowDeltas.push(delta);
  }

  conflated(channel: Channel): void {
    this.conflations.push(channel);
  }

  disconnected(reason: SlowDisconnectReason): void {
    this.disconnects.push(reason);
  }

  /** Slow consumers now, by the deltas reported. */
  slowCount(): number {
    return this.slowDeltas.reduce((a, b) => a + b, 0);
  }
}

// --- fixtures ----------------------------------------------------------------------------------

const OPTIONS = { highWaterBytes: 1_000, slowQueueMaxMessages: 4, slowConsumerTimeoutMs: 500 };
const HIGH = OPTIONS.highWaterBytes;
/** Below a quarter of the high-water mark: low enough to resume. */
const LOW = OPTIONS.highWaterBytes / 4 - 1;

const L2 = 'level2:BTC-USD';
const L2_BATCH = 'level2_batch:ETH-USD';
const TICKER = 'ticker:BTC-USD';
const TICKER_BATCH = 'ticker_batch:ETH-USD';
const MATCHES = 'matches:BTC-USD';
const HEARTBEAT = 'heartbeat:BTC-USD';
const STATUS = 'status';
const ALL = [L2, L2_BATCH, TICKER, TICKER_BATCH, MATCHES, HEARTBEAT, STATUS];

let observer: RecordingObserver;
let flow: FlowControl<FakeConnection>;

beforeEach(() => {
  observer = new RecordingObserver();
  flow = new FlowControl<FakeConnection>(OPTIONS, observer);
});

/** A connection on `topics` that went over the high-water mark at `now`. */
function slowConnection(topics: readonly string[] = ALL, now = 0): FakeConnection {
  const connection = new FakeConnection(topics);
  connection.buffered = HIGH + 1;
  flow.check([connection], now);
  connection.clear();
  return connection;
}

// --- tests -------------------------------------------------------------------------------------

describe('entering slow mode', () => {
  it('leaves a connection at or under the high-water mark alone', () => {
    const connection = new FakeConnection(ALL);
    for (const buffered of [0, LOW, HIGH / 2, HIGH]) {
      connection.buffered = buffered;
      flow.check([connection], 0);
    }
    expect(connection.calls).toEqual([]);
    expect(flow.isSlow(connection)).toBe(false);
    expect(observer.slowDeltas).toEqual([]);
    for (const topic of ALL) expect(flow.capturing(topic)).toBeUndefined();
    expect(flow.queuedMessages()).toBe(0);
  });

  it('above the high-water mark takes the connection off every topic and counts it slow', () => {
    const connection = new FakeConnection(ALL);
    connection.buffered = HIGH + 1;
    flow.check([connection], 0);
    expect(connection.calls).toEqual(ALL.map((topic) => ['unsubscribe', topic]));
    expect(connection.subscribed).toEqual([]);
    expect(flow.isSlow(connection)).toBe(true);
    expect(observer.slowDeltas).toEqual([1]);
    for (const topic of ALL) expect(flow.capturing(topic)).toEqual(new Set([connection]));
    expect(flow.queuedMessages()).toBe(0);
    // Staying over the mark changes nothing until the timeout.
    flow.check([connection], 100);
    expect(connection.calls).toHaveLength(ALL.length);
    expect(observer.slowDeltas).toEqual([1]);
  });

  it('handles each connection on its own', () => {
    const slow = new FakeConnection([L2, MATCHES]);
    const fast = new FakeConnection([L2, MATCHES]);
    slow.buffered = HIGH + 1;
    fast.buffered = 10;
    flow.check([slow, fast], 0);
    expect(flow.isSlow(slow)).toBe(true);
    expect(flow.isSlow(fast)).toBe(false);
    expect(fast.calls).toEqual([]);
    expect(flow.capturing(L2)).toEqual(new Set([slow]));
    const other = slowConnection([L2]);
    expect(flow.capturing(L2)).toEqual(new Set([slow, other]));
    expect(observer.slowDeltas).toEqual([1, 1]);
  });
});

describe('capturing while slow', () => {
  it('level2 and level2_batch queue nothing but a fresh snapshot, counting repeats as conflated', () => {
    const connection = slowConnection();
    flow.capture(connection, L2, 'level2', 'u1');
    expect(flow.queuedMessages()).toBe(1);
    expect(observer.conflations).toEqual([]);
    flow.capture(connection, L2, 'level2', 'u2');
    flow.capture(connection, L2, 'level2', 'u3');
    flow.capture(connection, L2_BATCH, 'level2_batch', 'b1');
    flow.capture(connection, L2_BATCH, 'level2_batch', 'b2');
    expect(flow.queuedMessages()).toBe(2);
    expect(observer.conflations).toEqual(['level2', 'level2', 'level2_batch']);
    expect(connection.calls).toEqual([]);
  });

  it('ticker and ticker_batch keep the latest ticker only, counting the ones replaced', () => {
    const connection = slowConnection();
    flow.capture(connection, TICKER, 'ticker', 't1');
    flow.capture(connection, TICKER, 'ticker', 't2');
    flow.capture(connection, TICKER_BATCH, 'ticker_batch', 'tb1');
    flow.capture(connection, TICKER, 'ticker', 't3');
    expect(flow.queuedMessages()).toBe(2);
    expect(observer.conflations).toEqual(['ticker', 'ticker']);
    connection.buffered = LOW;
    flow.drained(connection, 10);
    expect(connection.callsOf('sendPiece')).toEqual([['t3', 'tb1']]);
  });

  it('matches, heartbeat and status queue in order, unconflated', () => {
    const connection = slowConnection();
    flow.capture(connection, MATCHES, 'matches', 'm1');
    flow.capture(connection, HEARTBEAT, 'heartbeat', 'h1');
    flow.capture(connection, MATCHES, 'matches', 'm2');
    flow.capture(connection, STATUS, 'status', 's1');
    expect(flow.queuedMessages()).toBe(4);
    expect(observer.conflations).toEqual([]);
    expect(connection.calls).toEqual([]);
    connection.buffered = LOW;
    flow.drained(connection, 10);
    expect(connection.callsOf('sendPiece')[0]).toEqual(['m1', 'h1', 'm2', 's1']);
  });

  it('ignores messages for a connection that is not slow', () => {
    const connection = new FakeConnection(ALL);
    flow.capture(connection, MATCHES, 'matches', 'm1');
    flow.capture(connection, L2, 'level2', 'u1');
    expect(flow.queuedMessages()).toBe(0);
    expect(connection.calls).toEqual([]);
    expect(observer.conflations).toEqual([]);
  });

  it('disconnects with queue_overflow when the queue passes slowQueueMaxMessages', () => {
    const connection = slowConnection();
    for (let i = 1; i <= OPTIONS.slowQueueMaxMessages; i++)
      flow.capture(connection, MATCHES, 'matches', `m${i}`);
    // Conflated channels do not fill the queue.
    for (let i = 0; i < 10; i++) {
      flow.capture(connection, TICKER, 'ticker', `t${i}`);
      flow.capture(connection, L2, 'level2', `u${i}`);
    }
    expect(connection.calls).toEqual([]);
    expect(observer.disconnects).toEqual([]);
    flow.capture(connection, HEARTBEAT, 'heartbeat', 'h');
    expect(connection.calls).toEqual([['disconnectSlow', 'queue_overflow']]);
    expect(observer.disconnects).toEqual(['queue_overflow']);
  });
});

describe('slow consumer timeout', () => {
  it('disconnects with timeout once over the high-water mark longer than slowConsumerTimeoutMs', () => {
    const connection = slowConnection(ALL, 1_000);
    flow.check([connection], 1_200);
    flow.check([connection], 1_500);
    expect(connection.calls).toEqual([]);
    flow.check([connection], 1_501);
    expect(connection.calls).toEqual([['disconnectSlow', 'timeout']]);
    expect(observer.disconnects).toEqual(['timeout']);
  });

  it('restarts the clock when the buffer dips to the high-water mark, staying slow above a quarter', () => {
    const connection = slowConnection(ALL, 0);
    flow.check([connection], 400);
    connection.buffered = HIGH;
    flow.check([connection], 450);
    // Not low enough to resume.
    expect(flow.isSlow(connection)).toBe(true);
    expect(connection.calls).toEqual([]);
    connection.buffered = HIGH + 1;
    flow.check([connection], 500);
    flow.check([connection], 1_000);
    expect(connection.calls).toEqual([]);
    // Still counted once.
    expect(observer.slowDeltas).toEqual([1]);
    flow.check([connection], 1_001);
    expect(connection.calls).toEqual([['disconnectSlow', 'timeout']]);
  });
});

describe('resuming', () => {
  function withBacklog(): FakeConnection {
    const connection = slowConnection();
    flow.capture(connection, MATCHES, 'matches', 'm1');
    flow.capture(connection, L2, 'level2', 'u1');
    flow.capture(connection, TICKER, 'ticker', 't1');
    flow.capture(connection, HEARTBEAT, 'heartbeat', 'h1');
    flow.capture(connection, TICKER, 'ticker', 't2');
    flow.capture(connection, MATCHES, 'matches', 'm2');
    flow.capture(connection, TICKER_BATCH, 'ticker_batch', 'tb1');
    return connection;
  }

  // The queue then the latest tickers, in one piece (there is room); back on every other topic;
  // then one book snapshot at a time (the next once released() reports this one sent).
  const RESUMED: Call[] = [
    ['sendPiece', ['m1', 'h1', 'm2', 't2', 'tb1']],
    ['subscribe', TICKER],
    ['subscribe', TICKER_BATCH],
    ['subscribe', MATCHES],
    ['subscribe', HEARTBEAT],
    ['subscribe', STATUS],
    ['resnapshot', L2],
  ];

  it('does not resume between a quarter of the high-water mark and the mark', () => {
    const connection = withBacklog();
    connection.buffered = HIGH / 4;
    flow.check([connection], 10);
    flow.drained(connection, 10);
    expect(connection.calls).toEqual([]);
    expect(flow.isSlow(connection)).toBe(true);
  });

  it('check() below a quarter of the mark sends the queue, then the latest tickers, then re-attaches', () => {
    const connection = withBacklog();
    expect(flow.queuedMessages()).toBe(3 + 2 + 1);
    connection.buffered = LOW;
    flow.check([connection], 10);
    expect(connection.calls).toEqual(RESUMED);
    expect(flow.isSlow(connection)).toBe(false);
    expect(observer.slowDeltas).toEqual([1, -1]);
    // Non-book topics are live on uWS again.
    for (const topic of [TICKER, TICKER_BATCH, MATCHES, HEARTBEAT, STATUS])
      expect(flow.capturing(topic)).toBeUndefined();
    expect(connection.subscribed).toEqual([TICKER, TICKER_BATCH, MATCHES, HEARTBEAT, STATUS]);
  });

  it('drained() below a quarter of the mark resumes the same way', () => {
    const connection = withBacklog();
    connection.buffered = LOW;
    flow.drained(connection, 10);
    expect(connection.calls).toEqual(RESUMED);
    expect(flow.isSlow(connection)).toBe(false);
    expect(observer.slowDeltas).toEqual([1, -1]);
  });

  it('sends nothing for an empty queue or no tickers', () => {
    const connection = slowConnection([MATCHES, L2]);
    connection.buffered = 0;
    flow.drained(connection, 10);
    // Topics in the order they were taken off.
    expect(connection.calls).toEqual([
      ['subscribe', MATCHES],
      ['resnapshot', L2],
    ]);
  });

  it('keeps book topics captured, conflating, until their fresh snapshot went out', () => {
    const connection = withBacklog();
    connection.buffered = LOW;
    flow.check([connection], 10);
    expect(flow.capturing(L2)).toEqual(new Set([connection]));
    expect(flow.capturing(L2_BATCH)).toEqual(new Set([connection]));
    expect(flow.queuedMessages()).toBe(2);
    // Updates published while the snapshot is on its way are superseded by it.
    const before = observer.conflations.length;
    flow.capture(connection, L2, 'level2', 'u2');
    expect(observer.conflations.slice(before)).toEqual(['level2']);
    expect(flow.queuedMessages()).toBe(2);
    expect(connection.callsOf('sendPiece')).toHaveLength(1);
    expect(connection.callsOf('resnapshot')).toEqual([L2]);
    flow.released(connection, L2);
    expect(connection.callsOf('resnapshot')).toEqual([L2, L2_BATCH]);
    expect(flow.capturing(L2)).toBeUndefined();
    expect(flow.queuedMessages()).toBe(1);
    flow.released(connection, L2_BATCH);
    expect(flow.capturing(L2_BATCH)).toBeUndefined();
    expect(flow.queuedMessages()).toBe(0);
    // Fully live again: nothing is captured any more.
    flow.capture(connection, L2, 'level2', 'u3');
    expect(flow.queuedMessages()).toBe(0);
    expect(observer.slowDeltas).toEqual([1, -1]);
  });

  it('queuedMessages counts queue, latest tickers and pending snapshots, and returns to 0', () => {
    const connection = slowConnection();
    const other = slowConnection([MATCHES]);
    expect(flow.queuedMessages()).toBe(0);
    flow.capture(connection, MATCHES, 'matches', 'm1');
    flow.capture(connection, MATCHES, 'matches', 'm2');
    flow.capture(other, MATCHES, 'matches', 'm1');
    expect(flow.queuedMessages()).toBe(3);
    flow.capture(connection, TICKER, 'ticker', 't1');
    flow.capture(connection, TICKER, 'ticker', 't2');
    expect(flow.queuedMessages()).toBe(4);
    flow.capture(connection, L2, 'level2', 'u1');
    flow.capture(connection, L2, 'level2', 'u2');
    expect(flow.queuedMessages()).toBe(5);
    connection.buffered = 0;
    other.buffered = 0;
    flow.check([connection, other], 10);
    // Both book topics wait for their snapshot.
    expect(flow.queuedMessages()).toBe(2);
    flow.released(connection, L2);
    flow.released(connection, L2_BATCH);
    expect(flow.queuedMessages()).toBe(0);
    expect(observer.slowCount()).toBe(0);
  });

  it('a released() for a connection that is not captured is harmless', () => {
    const connection = new FakeConnection([L2]);
    flow.released(connection, L2);
    flow.unsubscribed(connection, L2);
    flow.closed(connection);
    flow.drained(connection, 10);
    expect(connection.calls).toEqual([]);
    expect(observer.slowDeltas).toEqual([]);
  });

  it('can go slow again after resuming, and resume again', () => {
    const connection = slowConnection([MATCHES, TICKER]);
    connection.buffered = 0;
    flow.check([connection], 10);
    expect(connection.subscribed).toEqual([MATCHES, TICKER]);
    connection.clear();
    connection.buffered = HIGH + 1;
    flow.check([connection], 20);
    expect(connection.calls).toEqual([
      ['unsubscribe', MATCHES],
      ['unsubscribe', TICKER],
    ]);
    expect(observer.slowDeltas).toEqual([1, -1, 1]);
    flow.capture(connection, MATCHES, 'matches', 'm9');
    connection.clear();
    connection.buffered = 0;
    flow.check([connection], 30);
    expect(connection.calls).toEqual([
      ['sendPiece', ['m9']],
      ['subscribe', MATCHES],
      ['subscribe', TICKER],
    ]);
    expect(observer.slowDeltas).toEqual([1, -1, 1, -1]);
  });

  // A resume through drained() must forget when the connection first went over the mark: going
  // over it again is a new slow episode, with its own timeout.
  it('after a resume through drained(), going over the mark again takes the connection off its topics again', () => {
    const connection = slowConnection([MATCHES], 0);
    connection.buffered = 0;
    flow.drained(connection, 10);
    expect(flow.isSlow(connection)).toBe(false);
    expect(connection.subscribed).toEqual([MATCHES]);
    connection.clear();
    connection.buffered = HIGH + 1;
    flow.check([connection], 100);
    expect(flow.isSlow(connection)).toBe(true);
    expect(connection.calls).toEqual([['unsubscribe', MATCHES]]);
    // And the timeout counts from when it went over again, not from the first time.
    flow.check([connection], 550);
    expect(connection.callsOf('disconnectSlow')).toEqual([]);
  });

  // A snapshot asked for again would start a new attach and drop the reply to the previous one,
  // so with asynchronous replies (worker threads) a topic could be re-requested forever.
  it('asks for each book snapshot once per resume, not again on every check() or drain', () => {
    const connection = slowConnection([L2, MATCHES]);
    connection.buffered = 0;
    flow.check([connection], 10);
    expect(connection.callsOf('resnapshot')).toEqual([L2]);
    flow.check([connection], 20);
    flow.drained(connection, 10);
    flow.check([connection], 30);
    expect(connection.callsOf('resnapshot')).toEqual([L2]);
    expect(connection.callsOf('subscribe')).toEqual([MATCHES]);
  });
});

describe('cleaning up', () => {
  it('unsubscribed() stops capturing the topic and drops what it held', () => {
    const connection = slowConnection();
    flow.capture(connection, TICKER, 'ticker', 't1');
    flow.capture(connection, L2, 'level2', 'u1');
    expect(flow.queuedMessages()).toBe(2);
    flow.unsubscribed(connection, TICKER);
    flow.unsubscribed(connection, L2);
    expect(flow.capturing(TICKER)).toBeUndefined();
    expect(flow.capturing(L2)).toBeUndefined();
    expect(flow.queuedMessages()).toBe(0);
    // Nothing for those topics on resume: no ticker, no snapshot, no re-subscription.
    connection.buffered = 0;
    flow.check([connection], 10);
    expect(connection.calls).toEqual([
      ['subscribe', TICKER_BATCH],
      ['subscribe', MATCHES],
      ['subscribe', HEARTBEAT],
      ['subscribe', STATUS],
      ['resnapshot', L2_BATCH],
    ]);
  });

  it('unsubscribed() of a book topic waiting for its snapshot after a resume', () => {
    const connection = slowConnection([L2]);
    connection.buffered = 0;
    flow.check([connection], 10);
    expect(flow.queuedMessages()).toBe(1);
    flow.unsubscribed(connection, L2);
    expect(flow.capturing(L2)).toBeUndefined();
    expect(flow.queuedMessages()).toBe(0);
  });

  it('closed() while slow counts one slow consumer fewer and forgets the connection', () => {
    const connection = slowConnection();
    const other = slowConnection([MATCHES]);
    flow.capture(connection, MATCHES, 'matches', 'm1');
    flow.capture(connection, TICKER, 'ticker', 't1');
    flow.capture(connection, L2, 'level2', 'u1');
    flow.closed(connection);
    expect(observer.slowDeltas).toEqual([1, 1, -1]);
    expect(flow.isSlow(connection)).toBe(false);
    for (const topic of ALL.filter((t) => t !== MATCHES)) expect(flow.capturing(topic)).toBeUndefined();
    expect(flow.capturing(MATCHES)).toEqual(new Set([other]));
    expect(flow.queuedMessages()).toBe(0);
    flow.capture(connection, MATCHES, 'matches', 'm2');
    expect(flow.queuedMessages()).toBe(0);
    expect(connection.calls).toEqual([]);
    // Closing twice counts nothing more.
    flow.closed(connection);
    expect(observer.slowDeltas).toEqual([1, 1, -1]);
  });

  it('closed() after a resume, while a snapshot is pending, does not count a slow consumer fewer', () => {
    const connection = slowConnection([L2]);
    connection.buffered = 0;
    flow.check([connection], 10);
    expect(observer.slowDeltas).toEqual([1, -1]);
    flow.closed(connection);
    expect(observer.slowDeltas).toEqual([1, -1]);
    expect(flow.capturing(L2)).toBeUndefined();
    expect(flow.queuedMessages()).toBe(0);
  });

  it('closed() forgets when the connection went over the mark', () => {
    const connection = slowConnection([MATCHES], 0);
    flow.closed(connection);
    // The same object (as a test double) over the mark again is a new slow episode, not a timeout.
    flow.check([connection], 10_000);
    expect(connection.callsOf('disconnectSlow')).toEqual([]);
    expect(flow.isSlow(connection)).toBe(true);
  });
});

describe('captureNew', () => {
  it('keeps a subscription completing while slow captured, holding its initial messages', () => {
    const connection = slowConnection([MATCHES]);
    flow.captureNew(connection, 'level2:SOL-USD', 'level2', ['snapshot']);
    flow.captureNew(connection, 'ticker:SOL-USD', 'ticker', ['ticker']);
    flow.captureNew(connection, 'matches:SOL-USD', 'matches', ['last_match']);
    flow.captureNew(connection, 'heartbeat:SOL-USD', 'heartbeat', []);
    for (const topic of ['level2:SOL-USD', 'ticker:SOL-USD', 'matches:SOL-USD', 'heartbeat:SOL-USD'])
      expect(flow.capturing(topic)).toEqual(new Set([connection]));
    expect(flow.queuedMessages()).toBe(3);
    expect(connection.calls).toEqual([]);
    flow.capture(connection, 'matches:SOL-USD', 'matches', 'm1');
    flow.capture(connection, 'level2:SOL-USD', 'level2', 'u1');
    connection.buffered = 0;
    flow.check([connection], 10);
    expect(connection.calls).toEqual([
      ['sendPiece', ['last_match', 'm1', 'ticker']],
      ['subscribe', MATCHES],
      ['subscribe', 'ticker:SOL-USD'],
      ['subscribe', 'matches:SOL-USD'],
      ['subscribe', 'heartbeat:SOL-USD'],
      ['resnapshot', 'level2:SOL-USD'],
    ]);
    flow.released(connection, 'level2:SOL-USD');
    expect(flow.queuedMessages()).toBe(0);
    expect(flow.capturing('level2:SOL-USD')).toBeUndefined();
  });

  it('does nothing for a connection that is not slow', () => {
    const connection = new FakeConnection();
    flow.captureNew(connection, L2, 'level2', ['snapshot']);
    expect(flow.capturing(L2)).toBeUndefined();
    expect(flow.queuedMessages()).toBe(0);
  });

  it('counts toward the queue bound', () => {
    const connection = slowConnection([MATCHES]);
    for (let i = 0; i < OPTIONS.slowQueueMaxMessages; i++)
      flow.capture(connection, MATCHES, 'matches', `m${i}`);
    flow.captureNew(connection, 'matches:SOL-USD', 'matches', ['last_match']);
    expect(connection.calls).toEqual([['disconnectSlow', 'queue_overflow']]);
  });
});

describe('catching up under backpressure', () => {
  /** Below this much buffered a piece goes out: half the high-water mark. */
  const BUDGET = HIGH / 2;
  const match = (i: number) => `m${String(i).padStart(3, '0')}${'.'.repeat(96)}`;

  /** A slow connection on MATCHES whose kernel buffers are full, with `count` 100-character matches queued. */
  function backlogged(count: number, topics: readonly string[] = [MATCHES]): FakeConnection {
    const connection = slowConnection(topics);
    connection.keepsSent = true;
    for (let i = 0; i < count; i++) flow.capture(connection, MATCHES, 'matches', match(i));
    return connection;
  }

  const sentPayloads = (connection: FakeConnection) => connection.callsOf('sendPiece').flat();
  const QUEUE_MAX = 100;

  beforeEach(() => {
    flow = new FlowControl<FakeConnection>({ ...OPTIONS, slowQueueMaxMessages: QUEUE_MAX }, observer);
  });

  it('sends the queue in pieces while less than half the high-water mark is buffered, continuing on drain', () => {
    const connection = backlogged(20);
    connection.buffered = LOW;
    flow.check([connection], 10);
    // 251 characters of room: three 100-character matches, then the buffer is over the budget.
    expect(connection.callsOf('sendPiece')).toEqual([[match(0), match(1), match(2)]]);
    expect(flow.isSlow(connection)).toBe(true);
    expect(connection.callsOf('subscribe')).toEqual([]);
    // Published during the catch-up: queued behind the rest, still in order.
    flow.capture(connection, MATCHES, 'matches', match(20));
    let peak = connection.buffered;
    for (let drains = 0; flow.isSlow(connection) && drains < 100; drains++) {
      connection.buffered = 0;
      flow.drained(connection, 20 + drains);
      peak = Math.max(peak, connection.buffered);
    }
    expect(sentPayloads(connection)).toEqual(Array.from({ length: 21 }, (_, i) => match(i)));
    // Never more than the budget plus the message that crossed it: far from the hard limit.
    expect(peak).toBeLessThanOrEqual(BUDGET + 100);
    expect(connection.calls.at(-1)).toEqual(['subscribe', MATCHES]);
    expect(observer.slowDeltas).toEqual([1, -1]);
    expect(observer.disconnects).toEqual([]);
    expect(flow.queuedMessages()).toBe(0);
  });

  it('the periodic check continues a catch-up too, and does not take a buffer filled by it for a new slow episode', () => {
    const connection = backlogged(30);
    connection.buffered = LOW;
    flow.check([connection], 10);
    // Over the high-water mark by what the catch-up sent: still the same catch-up.
    connection.buffered = HIGH + 1;
    flow.check([connection], 20);
    expect(connection.callsOf('unsubscribe')).toEqual([]);
    expect(observer.slowDeltas).toEqual([1]);
    connection.buffered = 0;
    flow.check([connection], 30);
    expect(connection.callsOf('sendPiece')).toHaveLength(2);
  });

  it('a catch-up not done within slowConsumerTimeoutMs ends with ErrSlowConsume (timeout)', () => {
    const connection = backlogged(50);
    connection.buffered = LOW;
    flow.check([connection], 1_000);
    flow.check([connection], 1_000 + OPTIONS.slowConsumerTimeoutMs);
    expect(connection.callsOf('disconnectSlow')).toEqual([]);
    flow.check([connection], 1_001 + OPTIONS.slowConsumerTimeoutMs);
    expect(connection.callsOf('disconnectSlow')).toEqual(['timeout']);
    expect(observer.disconnects).toEqual(['timeout']);
    expect(connection.callsOf('subscribe')).toEqual([]);
  });

  it('a queue overflowing during a catch-up ends with ErrSlowConsume (queue_overflow)', () => {
    const connection = backlogged(QUEUE_MAX);
    connection.buffered = LOW;
    flow.check([connection], 10);
    const sent = sentPayloads(connection).length;
    for (let i = 0; i <= sent; i++) flow.capture(connection, MATCHES, 'matches', match(100 + i));
    expect(connection.callsOf('disconnectSlow')).toEqual(['queue_overflow']);
  });

  it('a piece uWS drops cuts the connection (backpressure_limit) and nothing follows it', () => {
    const connection = backlogged(3, [MATCHES, L2]);
    connection.dropping = true;
    connection.buffered = LOW;
    flow.check([connection], 10);
    expect(connection.callsOf('sendPiece')).toHaveLength(1);
    expect(connection.callsOf('disconnectSlow')).toEqual(['backpressure_limit']);
    expect(observer.disconnects).toEqual(['backpressure_limit']);
    expect(connection.callsOf('subscribe')).toEqual([]);
    expect(connection.callsOf('resnapshot')).toEqual([]);
  });

  it('overLimit() cuts a connection uWS dropped a message of', () => {
    const connection = new FakeConnection([L2]);
    flow.overLimit(connection);
    expect(connection.calls).toEqual([['disconnectSlow', 'backpressure_limit']]);
    expect(observer.disconnects).toEqual(['backpressure_limit']);
  });

  it('asks for fresh snapshots one at a time, each only while under the budget', () => {
    const connection = slowConnection([L2, L2_BATCH, 'level2:SOL-USD']);
    connection.buffered = 0;
    flow.check([connection], 10);
    expect(connection.callsOf('resnapshot')).toEqual([L2]);
    // The snapshot went out and filled the buffer past the budget: the next waits for a drain.
    connection.buffered = BUDGET;
    flow.released(connection, L2);
    flow.check([connection], 20);
    expect(connection.callsOf('resnapshot')).toEqual([L2]);
    connection.buffered = BUDGET - 1;
    flow.drained(connection, 30);
    expect(connection.callsOf('resnapshot')).toEqual([L2, L2_BATCH]);
    connection.buffered = 0;
    flow.released(connection, L2_BATCH);
    expect(connection.callsOf('resnapshot')).toEqual([L2, L2_BATCH, 'level2:SOL-USD']);
    flow.released(connection, 'level2:SOL-USD');
    expect(flow.queuedMessages()).toBe(0);
    expect(flow.capturing('level2:SOL-USD')).toBeUndefined();
  });

  it('going over the mark while fresh snapshots are owed takes it off its live topics again', () => {
    const connection = slowConnection([L2, L2_BATCH, MATCHES]);
    connection.buffered = 0;
    flow.check([connection], 10);
    expect(connection.subscribed).toEqual([MATCHES]);
    connection.buffered = HIGH + 1;
    flow.check([connection], 20);
    expect(flow.isSlow(connection)).toBe(true);
    expect(connection.subscribed).toEqual([]);
    expect(observer.slowDeltas).toEqual([1, -1, 1]);
    // The snapshot asked for before arrives while slow: captured, asked for again on the next resume.
    flow.captureNew(connection, L2, 'level2', ['snapshot']);
    connection.clear();
    connection.buffered = 0;
    flow.check([connection], 30);
    expect(connection.calls).toEqual([
      ['subscribe', MATCHES],
      ['resnapshot', L2],
    ]);
  });
});
