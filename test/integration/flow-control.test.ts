import { afterEach, describe, expect, it } from 'vitest';
import { BookReplica } from '../support/book-replica.js';
import { readMetric, startTestGateway, type TestGateway, waitForMetric } from '../support/gateway.js';
import { resumeReading, stallReading } from '../support/stall.js';
import { type Message, TestClient } from '../support/ws-client.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC'];
let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

const fastFeed = {
  SIM_EVENTS_PER_SEC: '2500',
  WS_BACKPRESSURE_HIGH_BYTES: '65536',
  WS_MAX_BACKPRESSURE_BYTES: '2097152',
};

/** Trade ids per product must be contiguous: a match is never lost silently. */
function expectAllMatches(messages: Message[]): void {
  const last = new Map<string, number>();
  for (const m of messages) {
    if (m.type !== 'match') continue;
    const product = m.product_id as string;
    const previous = last.get(product);
    if (previous !== undefined) expect(m.trade_id, product).toBe(previous + 1);
    last.set(product, m.trade_id as number);
  }
}

/** level2 sequences are contiguous except where a fresh snapshot announces the jump. */
function expectNoSilentBookGap(messages: Message[], productId: string): number {
  let sequence = 0;
  let snapshots = 0;
  for (const m of messages) {
    if (m.product_id !== productId) continue;
    if (m.type === 'snapshot') {
      snapshots++;
      sequence = m.sequence as number;
    } else if (m.type === 'l2update' && (m.sequence as number) > sequence) {
      expect(m.sequence).toBe(sequence + 1);
      sequence = m.sequence as number;
    }
  }
  return snapshots;
}

describe('slow consumers', () => {
  it('a stalled client is switched to conflated delivery and, once it reads again, gets fresh snapshots and an exact book', async () => {
    gw = await startTestGateway({
      ...fastFeed,
      SIM_EVENTS_PER_SEC: '1000',
      WS_SLOW_QUEUE_MAX_MESSAGES: '200000',
    });
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['level2', 'matches', 'ticker'], PRODUCTS);
    await client.nextOfType('snapshot');
    stallReading(client);

    await waitForMetric(gw, 'ws_slow_consumers', '', (v) => v === 1);
    const queued = await waitForMetric(gw, 'ws_message_queue_size', '', (v) => v > 0);
    await waitForMetric(gw, 'ws_messages_conflated_total', 'channel="ticker"', (v) => v > 0);
    expect(queued).toBeGreaterThan(0);

    resumeReading(client);
    // Back live: a fresh snapshot (the first one was consumed above), then live updates again.
    const replica = new BookReplica();
    let resynced = false;
    await client.next((m) => {
      if (m.product_id === 'BTC-USD' && m.type === 'snapshot') resynced = true;
      if (resynced && m.product_id === 'BTC-USD') replica.apply(m);
      return resynced && m.type === 'l2update' && m.product_id === 'BTC-USD';
    }, 15_000);
    await waitForMetric(gw, 'ws_slow_consumers', '', (v) => v === 0);
    await waitForMetric(gw, 'ws_message_queue_size', '', (v) => v === 0);

    const rest = await gw.getJson<{ bids: [string, string][]; asks: [string, string][]; sequence: number }>(
      '/products/BTC-USD/book?level=2',
    );
    await client.next((m) => {
      if (m.product_id === 'BTC-USD') replica.apply(m);
      return replica.sequence >= rest.body.sequence;
    });
    expect(replica.history.get(rest.body.sequence)).toEqual({
      bids: rest.body.bids.map(([p, s]) => [p, s]),
      asks: rest.body.asks.map(([p, s]) => [p, s]),
    });
    expectAllMatches(client.messages);
    for (const product of PRODUCTS)
      expect(expectNoSilentBookGap(client.messages, product)).toBeGreaterThanOrEqual(2);
    await client.close();
  }, 30_000);

  it('a client stalled past WS_SLOW_CONSUMER_TIMEOUT_MS gets ErrSlowConsume and close code 4002', async () => {
    gw = await startTestGateway({
      ...fastFeed,
      WS_SLOW_QUEUE_MAX_MESSAGES: '200000',
      WS_SLOW_CONSUMER_TIMEOUT_MS: '800',
    });
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['level2', 'matches'], PRODUCTS);
    await client.nextOfType('snapshot');
    stallReading(client);
    await waitForMetric(gw, 'ws_slow_consumer_disconnects_total', 'reason="timeout"', (v) => v === 1);
    resumeReading(client);
    const closed = await client.closed;
    expect(closed.code).toBe(4002);
    expect(client.messages.at(-1)).toMatchObject({
      type: 'error',
      message: 'ErrSlowConsume',
      code: 'slow_consumer',
    });
    expect(await gw.metric('ws_disconnections_total', 'reason="slow_consumer"')).toBe(1);
    await waitForMetric(gw, 'ws_message_queue_size', '', (v) => v === 0);
    expect(await gw.metric('ws_slow_consumers')).toBe(0);
  }, 30_000);

  it('a queue that would overflow disconnects with ErrSlowConsume instead of dropping matches', async () => {
    gw = await startTestGateway({ ...fastFeed, WS_SLOW_QUEUE_MAX_MESSAGES: '50' });
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['matches'], PRODUCTS);
    // Fill the socket with snapshots-free matches only: a stall needs volume, so add level2 too.
    client.subscribe(['level2'], PRODUCTS);
    await client.nextOfType('snapshot');
    stallReading(client);
    await waitForMetric(gw, 'ws_slow_consumer_disconnects_total', 'reason="queue_overflow"', (v) => v === 1);
    resumeReading(client);
    expect((await client.closed).code).toBe(4002);
    expectAllMatches(client.messages);
  }, 30_000);

  it('fast clients on the same products get every message, in order, while others are stalled', async () => {
    gw = await startTestGateway({
      ...fastFeed,
      WS_SLOW_QUEUE_MAX_MESSAGES: '200000',
      SIM_EVENTS_PER_SEC: '1500',
    });
    const measure = async (stalledCount: number) => {
      const stalled = await Promise.all(
        Array.from({ length: stalledCount }, () => TestClient.connect(gw!.wsUrl)),
      );
      for (const s of stalled) s.subscribe(['level2', 'matches'], PRODUCTS);
      await Promise.all(stalled.map((s) => s.nextOfType('snapshot')));
      for (const s of stalled) stallReading(s);
      if (stalledCount > 0) await waitForMetric(gw!, 'ws_slow_consumers', '', (v) => v === stalledCount);
      const fast = await Promise.all(Array.from({ length: 4 }, () => TestClient.connect(gw!.wsUrl)));
      for (const f of fast) f.subscribe(['level2', 'matches'], PRODUCTS);
      const latencies: number[] = [];
      await Promise.all(
        fast.map((f) => {
          let updates = 0;
          return f.next((m) => {
            if (m.type !== 'l2update') return false;
            latencies.push(Date.now() - Date.parse(m.time as string));
            return ++updates >= 1500;
          }, 15_000);
        }),
      );
      for (const f of fast) {
        expectAllMatches(f.messages);
        for (const product of PRODUCTS) expect(expectNoSilentBookGap(f.messages, product)).toBe(1);
      }
      await Promise.all([...fast.map((c) => c.close()), ...stalled.map((c) => c.terminate())]);
      latencies.sort((a, b) => a - b);
      return {
        p50: latencies[Math.floor(latencies.length * 0.5)],
        p99: latencies[Math.floor(latencies.length * 0.99)],
      };
    };
    const alone = await measure(0);
    const withStalled = await measure(6);
    // Reported, not asserted: wall-clock figures on a shared machine are not test material.
    console.log(
      `fast-client l2update latency ms: alone p50=${alone.p50} p99=${alone.p99}; with 6 stalled p50=${withStalled.p50} p99=${withStalled.p99}`,
    );
  }, 60_000);
});

describe('WS_THROTTLE_MS=100', () => {
  it('at most one ticker and one l2update per product per 100 ms, every match, and an exact book', async () => {
    gw = await startTestGateway({ SIM_EVENTS_PER_SEC: '400', WS_THROTTLE_MS: '100' });
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['level2', 'ticker', 'matches'], ['BTC-USD', 'ETH-USD']);
    const replica = new BookReplica();
    const rest = await (async () => {
      await client.next((m) => m.type === 'snapshot' && m.product_id === 'BTC-USD');
      // Collect about 3 s of stream.
      let updates = 0;
      await client.next((m) => m.type === 'l2update' && ++updates > 50, 10_000);
      return gw!.getJson<{ bids: [string, string][]; asks: [string, string][]; sequence: number }>(
        '/products/BTC-USD/book?level=2',
      );
    })();
    for (const m of client.messages) if (m.product_id === 'BTC-USD') replica.apply(m);
    await client.next((m) => {
      if (m.product_id === 'BTC-USD') replica.apply(m);
      return m.type === 'l2update' && m.product_id === 'BTC-USD' && replica.sequence >= rest.body.sequence;
    });
    for (const [type, product] of [
      ['ticker', 'BTC-USD'],
      ['l2update', 'BTC-USD'],
      ['ticker', 'ETH-USD'],
      ['l2update', 'ETH-USD'],
    ] as const) {
      const arrivals = client.messages
        .map((m, i) => ({ m, at: client.arrivals[i]! }))
        .filter(({ m }) => m.type === type && m.product_id === product)
        .map(({ at }) => at);
      expect(arrivals.length, `${type} ${product}`).toBeGreaterThan(5);
      // At most one per 100 ms window, counted over the whole span: a late delivery (event-loop
      // jitter on a loaded machine) that brings two arrivals closer cannot fail it, but a second
      // message inside a window would.
      const span = arrivals.at(-1)! - arrivals[0]!;
      expect(arrivals.length - 1, `${type} ${product} over ${span} ms`).toBeLessThanOrEqual(
        Math.floor(span / 100) + 1,
      );
      for (let i = 1; i < arrivals.length; i++)
        expect(arrivals[i]! - arrivals[i - 1]!).toBeGreaterThanOrEqual(40);
    }
    expectAllMatches(client.messages);
    expect(client.messages.filter((m) => m.type === 'match').length).toBeGreaterThan(20);
    // A throttled book is merged, never approximate: it is exact at every sequence it reports.
    const ours =
      replica.history.get(rest.body.sequence) ??
      (replica.sequence === rest.body.sequence ? replica.levels() : undefined);
    if (ours) {
      expect(ours).toEqual({
        bids: rest.body.bids.map(([p, s]) => [p, s]),
        asks: rest.body.asks.map(([p, s]) => [p, s]),
      });
    }
    expect(await gw.metric('ws_messages_conflated_total', 'channel="level2"')).toBeGreaterThan(0);
    await client.close();
  }, 30_000);
});

/** Trade ids per product, as received: consecutive unless a gap was let through. */
function matchGaps(messages: Message[]): string[] {
  const last = new Map<string, number>();
  const gaps: string[] = [];
  for (const m of messages) {
    if (m.type !== 'match') continue;
    const product = m.product_id as string;
    const previous = last.get(product);
    if (previous !== undefined && m.trade_id !== previous + 1)
      gaps.push(`${product} trade_id ${previous} -> ${m.trade_id}`);
    last.set(product, m.trade_id as number);
  }
  return gaps;
}

/** l2update sequence jumps with no snapshot before them. */
function bookGaps(messages: Message[]): string[] {
  const sequence = new Map<string, number>();
  const gaps: string[] = [];
  for (const m of messages) {
    const product = m.product_id as string;
    if (m.type === 'snapshot') sequence.set(product, m.sequence as number);
    if (m.type !== 'l2update') continue;
    const previous = sequence.get(product);
    if (previous === undefined || (m.sequence as number) <= previous) continue;
    if (m.sequence !== previous + 1) gaps.push(`${product} sequence ${previous} -> ${m.sequence}`);
    sequence.set(product, m.sequence as number);
  }
  return gaps;
}

/** Waits until the gateway's metrics satisfy a condition over several of them; resolves with them. */
async function waitForMetrics(
  gateway: TestGateway,
  condition: (read: (name: string, labels?: string) => number | undefined) => boolean,
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const text = await (await fetch(`${gateway.httpUrl}/metrics`)).text();
    if (condition((name, labels) => readMetric(text, name, labels))) return text;
    if (performance.now() > deadline) {
      const shown = text
        .split('\n')
        .filter((line) => /^ws_(active|message_queue|slow|disconnections)/.test(line));
      throw new Error(`metrics did not reach the condition in ${timeoutMs} ms:\n${shown.join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

type Outcome = { readonly kind: 'caught_up' } | { readonly kind: 'closed'; readonly code: number };

/**
 * After a resume: live again (a fresh snapshot per product, then an l2update after it), or
 * closed. Messages before `from` arrived before the resume.
 */
async function caughtUpOrClosed(client: TestClient, from: number): Promise<Outcome> {
  const fresh = new Set<string>();
  const live = new Set<string>();
  let index = 0;
  const caughtUp = client
    .next((m) => {
      const at = index++;
      const product = m.product_id as string;
      if (at >= from && m.type === 'snapshot') fresh.add(product);
      if (m.type === 'l2update' && fresh.has(product)) live.add(product);
      return live.size === PRODUCTS.length;
    }, 60_000)
    .then((): Outcome => ({ kind: 'caught_up' }));
  const closed = client.closed.then(({ code }): Outcome => ({ kind: 'closed', code }));
  return Promise.race([caughtUp.catch(() => closed), closed]);
}

describe('catching up a queue larger than WS_MAX_BACKPRESSURE_BYTES (issue 13.2)', () => {
  const cases = [
    {
      name: "main thread, the issue's limits",
      threads: '0',
      env: {
        SIM_EVENTS_PER_SEC: '2000',
        WS_BACKPRESSURE_HIGH_BYTES: '16384',
        WS_MAX_BACKPRESSURE_BYTES: '262144',
      },
    },
    {
      name: "two worker threads, the issue's limits",
      threads: '2',
      env: {
        SIM_EVENTS_PER_SEC: '2000',
        WS_BACKPRESSURE_HIGH_BYTES: '16384',
        WS_MAX_BACKPRESSURE_BYTES: '262144',
      },
    },
    {
      name: 'main thread, 32 KiB / 64 KiB at 3,000 events/s',
      threads: '0',
      env: {
        SIM_EVENTS_PER_SEC: '3000',
        WS_BACKPRESSURE_HIGH_BYTES: '32768',
        WS_MAX_BACKPRESSURE_BYTES: '65536',
        // A cut by uWS is told from a network error by a sweep having seen bytes waiting first:
        // at 3,000 events/s the gap between mark and limit fills in about one default interval,
        // so a sweep delayed by a loaded machine could miss it (see the report of issue 13.2).
        WS_BACKPRESSURE_CHECK_MS: '5',
      },
    },
  ];
  for (const { name, threads, env } of cases) {
    it(`${name}: every match in order and fresh books, or ErrSlowConsume and 4002; never a gap`, async () => {
      gw = await startTestGateway({
        ...env,
        WS_WORKER_THREADS: threads,
        WS_SLOW_QUEUE_MAX_MESSAGES: '100000',
        WS_SLOW_CONSUMER_TIMEOUT_MS: '30000',
      });
      const clients = await Promise.all([TestClient.connect(gw.wsUrl), TestClient.connect(gw.wsUrl)]);
      for (const c of clients) c.subscribe(['level2', 'matches'], PRODUCTS);
      await Promise.all(clients.map((c) => c.nextOfType('snapshot')));
      for (const c of clients) stallReading(c);
      // As in the issue: about 20,000 matches (several MB, far more than the hard limit) queued for
      // each client still connected (uWS's hard limit can cut one before a sweep sees it slow).
      const perClient = 20_000;
      const stalled = await waitForMetrics(gw, (read) => {
        const active = read('ws_active_connections') ?? 0;
        return active === 0 || (read('ws_message_queue_size') ?? 0) >= active * perClient;
      });
      // Cut by uWS while stalled, before any resume: they see a bare 1006 when they read again.
      const cutBeforeResume = clients.length - (readMetric(stalled, 'ws_active_connections') ?? 0);
      const from = clients.map((c) => c.messages.length);
      for (const c of clients) resumeReading(c);
      const outcomes = await Promise.all(clients.map((c, i) => caughtUpOrClosed(c, from[i]!)));

      for (const [i, c] of clients.entries()) {
        expect(matchGaps(c.messages), `client ${i}`).toEqual([]);
        expect(bookGaps(c.messages), `client ${i}`).toEqual([]);
        const outcome = outcomes[i]!;
        // Cut by flow control: ErrSlowConsume and 4002. Cut by uWS at the hard limit while it was
        // still live (before the sweep saw it slow): a bare 1006, but counted as a slow consumer
        // (below), never as `error`.
        if (outcome.kind === 'closed' && outcome.code !== 1006) {
          expect(outcome.code, `client ${i}`).toBe(4002);
          expect(c.messages.at(-1)).toMatchObject({ type: 'error', message: 'ErrSlowConsume' });
        }
      }
      const closed = outcomes.filter((o) => o.kind === 'closed');
      const bare = closed.filter((o) => o.code === 1006).length;
      // Resumed inside the timeout: caught up, or 4002; never cut by uWS during the catch-up.
      expect(bare).toBeLessThanOrEqual(cutBeforeResume);
      console.log(
        `${name}: ${clients.length - closed.length} of ${clients.length} caught up, ${closed.length - bare} got 4002, ` +
          `${bare} were cut by uWS; received ${clients.map((c) => c.messages.filter((m) => m.type === 'match').length).join(' / ')} matches`,
      );
      await waitForMetrics(gw, (read) => read('ws_active_connections') === clients.length - closed.length);
      const text = await (await fetch(`${gw.httpUrl}/metrics`)).text();
      const read = (metric: string, labels: string) => readMetric(text, metric, labels) ?? 0;
      expect(read('ws_disconnections_total', 'reason="error"')).toBe(0);
      expect(read('ws_disconnections_total', 'reason="slow_consumer"')).toBe(closed.length);
      expect(
        read('ws_slow_consumer_disconnects_total', 'reason="backpressure_limit"'),
      ).toBeGreaterThanOrEqual(bare);
      if (closed.length === 0) {
        await waitForMetric(gw, 'ws_slow_consumers', '', (v) => v === 0);
        await waitForMetric(gw, 'ws_message_queue_size', '', (v) => v === 0);
      }
      await Promise.all(clients.map((c) => c.close()));
    }, 120_000);
  }
});
