import { afterEach, describe, expect, it, vi } from 'vitest';
import { CURRENCIES, type ProductSpec, productFromId } from '../../../src/config/products.js';
import { MarketModel } from '../../../src/feeds/simulator/market.js';
import { createMarkets, EventCredit, TickPacer } from '../../../src/feeds/simulator/pacing.js';
import { Random } from '../../../src/feeds/simulator/random.js';
import { SimulatorSource } from '../../../src/feeds/simulator/simulator-source.js';
import type { FeedEvent, FeedSink, TradeEvent } from '../../../src/feeds/types.js';
import { L2Book } from '../../../src/hub/book.js';
import {
  COINBASE_TIMINGS,
  Hub,
  type InvalidEventReason,
  type PublicationSink,
} from '../../../src/hub/hub.js';
import { canonicalPattern, compareCanonical, formatUnits, isZero } from '../../../src/market/decimal.js';
import { isIsoTime, isoMicros } from '../../../src/market/time.js';
import type { Channel } from '../../../src/market/types.js';

const DEFAULT_PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC'];
const TIME = '2024-03-01T12:00:00.000000Z';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function spec(id: string): ProductSpec {
  const product = productFromId(id);
  if (typeof product === 'string') throw new Error(product);
  return product;
}

class RecordingFeedSink implements FeedSink {
  readonly events: FeedEvent[] = [];
  onEvent(event: FeedEvent): void {
    this.events.push(event);
  }
  onUndecodable(): void {}
  onLiveChanged(): void {}
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Random', () => {
  it('is reproducible from its seed and uniform-ish in [0, 1)', () => {
    const a = new Random(42);
    const b = new Random(42);
    const c = new Random(43);
    const first = Array.from({ length: 1_000 }, () => a.next());
    expect(Array.from({ length: 1_000 }, () => b.next())).toEqual(first);
    expect(Array.from({ length: 1_000 }, () => c.next())).not.toEqual(first);
    for (const x of first) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
    const mean = first.reduce((s, x) => s + x, 0) / first.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });

  it('below(n) gives integers in [0, n) and uuid() gives v4 UUIDs', () => {
    const random = new Random(7);
    const seen = new Set<number>();
    for (let i = 0; i < 1_000; i++) {
      const k = random.below(6);
      expect(Number.isInteger(k)).toBe(true);
      seen.add(k);
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    for (let i = 0; i < 100; i++) expect(random.uuid()).toMatch(UUID);
  });
});

describe('MarketModel', () => {
  it('gives the same event stream for the same seed, and another for another seed', () => {
    const run = (seed: number) => {
      const model = new MarketModel(spec('BTC-USD'), new Random(seed), 20);
      const events: FeedEvent[] = [model.snapshot(TIME)];
      for (let i = 0; i < 2_000; i++) events.push(...model.step(TIME));
      return events;
    };
    const first = run(99);
    expect(run(99)).toEqual(first);
    expect(run(100)).not.toEqual(first);
  });

  it('starts from a two-sided, uncrossed snapshot at sequence 1 around the reference price', () => {
    for (const id of DEFAULT_PRODUCTS) {
      const product = spec(id);
      const snap = new MarketModel(product, new Random(1), 20).snapshot(TIME);
      expect(snap).toMatchObject({ type: 'snapshot', product_id: id, sequence: 1, time: TIME });
      expect(snap.bids.length).toBeGreaterThanOrEqual(5);
      expect(snap.asks.length).toBeGreaterThanOrEqual(5);
      const book = new L2Book();
      expect(book.reset(snap.bids, snap.asks)).toBe(true);
      const mid = (Number(snap.bids[0]?.[0]) + Number(snap.asks[0]?.[0])) / 2;
      expect(Math.abs(mid / product.referencePrice - 1)).toBeLessThan(0.01);
      // Levels come best first, as the book would sort them.
      expect(snap.bids).toEqual(book.bids.top());
      expect(snap.asks).toEqual(book.asks.top());
    }
  });

  describe.each(DEFAULT_PRODUCTS)('over 20,000 steps of %s', (id) => {
    const product = spec(id);
    const prices = canonicalPattern(product.quoteDecimals);
    const sizes = canonicalPattern(product.baseDecimals);

    it('keeps a consistent, uncrossed book with contiguous sequences and trade ids', () => {
      const model = new MarketModel(product, new Random(2024), 20);
      const snap = model.snapshot(TIME);
      const book = new L2Book();
      expect(book.reset(snap.bids, snap.asks)).toBe(true);
      let sequence = snap.sequence;
      let tradeId = 0;
      let trades = 0;
      let bookEvents = 0;
      let crossedAt: number | undefined;
      const problems: string[] = [];
      for (let step = 0; step < 20_000; step++) {
        const events = model.step(TIME);
        if (events.length === 0) problems.push(`step ${step} produced no event`);
        for (const event of events) {
          if (event.type === 'snapshot') {
            problems.push(`step ${step}: unexpected snapshot`);
            continue;
          }
          if (event.product_id !== id) problems.push(`product ${event.product_id}`);
          if (event.sequence !== sequence + 1) problems.push(`sequence ${event.sequence} after ${sequence}`);
          sequence = event.sequence;
          if (event.changes.length !== 1) problems.push(`${event.changes.length} changes`);
          for (const [, price, size, orders] of event.changes) {
            if (!prices.test(price) || isZero(price)) problems.push(`price ${price}`);
            if (!sizes.test(size)) problems.push(`size ${size}`);
            if (!Number.isInteger(orders) || orders < 0 || isZero(size) !== (orders === 0)) {
              problems.push(`orders ${orders} with size ${size}`);
            }
          }
          if (event.type === 'trade') {
            trades++;
            if (event.trade_id !== tradeId + 1) problems.push(`trade id ${event.trade_id} after ${tradeId}`);
            tradeId = event.trade_id;
            if (!prices.test(event.price) || !sizes.test(event.size) || isZero(event.size)) {
              problems.push(`trade ${event.price} x ${event.size}`);
            }
            // The fill is at the maker's level, on the maker's side.
            const [side, price] = event.changes[0]!;
            if (side !== event.side || price !== event.price) problems.push(`trade level ${side} ${price}`);
            if (!UUID.test(event.maker_order_id) || !UUID.test(event.taker_order_id))
              problems.push('order id');
          } else {
            bookEvents++;
          }
          if (!book.apply(event.changes)) crossedAt ??= event.sequence;
        }
        if (problems.length > 0) break;
      }
      expect(problems).toEqual([]);
      expect(crossedAt).toBeUndefined();
      expect(book.isCrossed()).toBe(false);
      expect(book.bids.size).toBeGreaterThan(0);
      expect(book.asks.size).toBeGreaterThan(0);
      expect(trades).toBeGreaterThan(1_000);
      expect(bookEvents).toBeGreaterThan(10_000);
      // The model's own snapshot equals the book built from its events.
      const after = model.snapshot(TIME);
      expect(after.sequence).toBe(sequence);
      expect(after.bids).toEqual(book.bids.top());
      expect(after.asks).toEqual(book.asks.top());
    });
  });

  it('feeds a hub without a single rejection, with 24 h statistics that match the trades', () => {
    vi.useFakeTimers();
    const start = Date.UTC(2024, 2, 1, 12);
    vi.setSystemTime(start);
    const product = spec('BTC-USD');
    const tickers: Array<Record<string, unknown>> = [];
    const sink: PublicationSink = {
      publish(_topic: string, channel: Channel, payload: string) {
        if (channel === 'ticker') tickers.push(JSON.parse(payload) as Record<string, unknown>);
      },
      hasSubscribers: () => true,
    };
    const rejections: Array<[InvalidEventReason, string]> = [];
    const hub = new Hub(
      [product],
      sink,
      {
        eventApplied() {},
        conflated() {},
        feedLiveChanged() {},
        eventRejected: (reason, _id, detail) => rejections.push([reason, detail]),
        resynced() {},
        staleProductsChanged() {},
      },
      () => {},
      { ...COINBASE_TIMINGS, statusMs: 10_000, throttleMs: 0 },
    );
    const model = new MarketModel(product, new Random(5), 20);
    hub.onEvent(model.snapshot(isoMicros(start * 1000)), 0);
    const trades: TradeEvent[] = [];
    // 20,000 steps at 20 events per second: about 17 minutes of wall time.
    for (let step = 0; step < 20_000; step++) {
      const now = start + step * 50;
      vi.setSystemTime(now);
      for (const event of model.step(isoMicros(now * 1000))) {
        if (event.type === 'trade') trades.push(event);
        hub.onEvent(event, 0);
      }
    }
    expect(rejections).toEqual([]);
    expect(tickers).toHaveLength(trades.length);
    expect(trades.length).toBeGreaterThan(1_000);
    let high = trades[0]!.price;
    let low = trades[0]!.price;
    let volume = 0n;
    for (const [i, trade] of trades.entries()) {
      if (compareCanonical(trade.price, high) > 0) high = trade.price;
      if (compareCanonical(trade.price, low) < 0) low = trade.price;
      volume += BigInt(trade.size.replace('.', ''));
      const ticker = tickers[i]!;
      expect(ticker).toMatchObject({
        trade_id: trade.trade_id,
        sequence: trade.sequence,
        price: trade.price,
        last_size: trade.size,
        side: trade.side === 'sell' ? 'buy' : 'sell',
        open_24h: trades[0]!.price,
        high_24h: high,
        low_24h: low,
        volume_24h: formatUnits(Number(volume), product.baseDecimals),
        volume_30d: formatUnits(Number(volume), product.baseDecimals),
      });
    }
    const book = hub.restBook('BTC-USD', 2);
    const snap = model.snapshot(TIME);
    expect(book?.sequence).toBe(snap.sequence);
    expect(book?.bids).toEqual(snap.bids);
    expect(book?.asks).toEqual(snap.asks);
  });

  // BUG: the catalogue accepts DOGE-BTC (both currencies are known, and PRODUCTS=DOGE-BTC loads),
  // but its reference price, 0.15 / 64,000 = 0.0000023 BTC, is below one quote tick (0.00001): the
  // seeded book has asks only, and placeLimit's `Math.max(1, price)` then rests every new bid at one
  // tick, on top of the best ask. Every event after the snapshot crosses the book.
  it('never crosses the book for any product the catalogue accepts', () => {
    const crossed: string[] = [];
    for (const base of CURRENCIES.keys()) {
      for (const quote of CURRENCIES.keys()) {
        if (base === quote) continue;
        const product = spec(`${base}-${quote}`);
        const model = new MarketModel(product, new Random(3), 20);
        const snap = model.snapshot(TIME);
        const book = new L2Book();
        let ok = book.reset(snap.bids, snap.asks);
        for (let step = 0; ok && step < 500; step++) {
          for (const event of model.step(TIME)) {
            if (event.type !== 'snapshot' && !book.apply(event.changes)) ok = false;
          }
        }
        if (!ok) crossed.push(product.id);
      }
    }
    expect(crossed).toEqual([]);
  });
});

describe('TickPacer', () => {
  const dueBy = (pacer: TickPacer, now: number) => {
    const ticks: Array<[steps: number, scheduledAt: number]> = [];
    pacer.forEachDue(now, (steps, scheduledAt) => ticks.push([steps, scheduledAt]));
    return ticks;
  };

  it('hands out each tick of the grid once, at its scheduled time, however late it is asked', () => {
    const pacer = new TickPacer(250, 10);
    pacer.reset(1_000);
    expect(pacer.untilNextTick(1_000)).toBe(10);
    expect(dueBy(pacer, 1_009.9)).toEqual([]);
    // Asked 3.5 ms late: the tick still carries 1,010, and the next one stays on the grid.
    expect(dueBy(pacer, 1_013.5)).toEqual([[2, 1_010]]);
    expect(pacer.untilNextTick(1_013.5)).toBe(6.5);
    // Two ticks late: both, oldest first, with 2.5 steps per tick carried over.
    expect(dueBy(pacer, 1_041)).toEqual([
      [3, 1_020],
      [2, 1_030],
      [3, 1_040],
    ]);
    expect(pacer.lastTickAt).toBe(1_040);
  });

  it('keeps the rate over many ticks, fractions carried', () => {
    const pacer = new TickPacer(0.5, 10);
    pacer.reset(0);
    let steps = 0;
    for (let now = 10; now <= 10_000; now += 10) for (const [n] of dueBy(pacer, now)) steps += n;
    expect(steps).toBe(5);
  });

  it('skips the oldest ticks after a long stall instead of bursting', () => {
    const pacer = new TickPacer(1_000, 10);
    pacer.reset(0);
    const ticks = dueBy(pacer, 60_000);
    // At most 1,000 steps at once: the last 100 ticks of the 6,000 that came due.
    expect(ticks.reduce((n, [steps]) => n + steps, 0)).toBe(1_000);
    expect(ticks[0]?.[1]).toBe(59_010);
    expect(ticks.at(-1)?.[1]).toBe(60_000);
  });
});

describe('SimulatorSource', () => {
  const products = DEFAULT_PRODUCTS.map(spec);

  it('delivers one snapshot per product on start, then events at the configured rate', async () => {
    vi.useFakeTimers();
    const source = new SimulatorSource({ products, eventsPerSecond: 20, seed: 11 });
    const sink = new RecordingFeedSink();
    expect(source.notLiveReason()).toBe('the simulator is stopped');
    await source.start(sink);
    expect(source.notLiveReason()).toBeUndefined();
    expect(sink.events.map((e) => [e.type, e.product_id, e.sequence])).toEqual(
      DEFAULT_PRODUCTS.map((id) => ['snapshot', id, 1]),
    );
    for (const event of sink.events) expect(isIsoTime(event.time)).toBe(true);

    // 20 events per second per product: one second brings 20 steps of each.
    vi.advanceTimersByTime(1_000);
    for (const id of DEFAULT_PRODUCTS) {
      const events = sink.events.filter((e) => e.product_id === id && e.type !== 'snapshot');
      expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => 2 + i));
      expect(events.length).toBeGreaterThanOrEqual(20);
      expect(events.length).toBeLessThan(200);
    }

    await source.stop();
    expect(source.notLiveReason()).toBe('the simulator is stopped');
    const count = sink.events.length;
    vi.advanceTimersByTime(10_000);
    expect(sink.events.length).toBe(count);
  });

  it("stamps each tick's events with the tick's scheduled time", async () => {
    vi.useFakeTimers();
    const source = new SimulatorSource({ products, eventsPerSecond: 200, seed: 3 });
    const sink = new RecordingFeedSink();
    await source.start(sink);
    const startedAt = Date.parse(sink.events[0]!.time);
    vi.advanceTimersByTime(1_000);
    await source.stop();
    const offsets = new Set(sink.events.slice(products.length).map((e) => Date.parse(e.time) - startedAt));
    // Two steps per 10 ms tick, every event at a multiple of 10 ms after the start.
    expect([...offsets].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => 10 * (i + 1)));
  });

  it('is reproducible from its seed', async () => {
    vi.useFakeTimers();
    const run = async () => {
      const source = new SimulatorSource({ products, eventsPerSecond: 50, seed: 4_000_000_000 });
      const sink = new RecordingFeedSink();
      await source.start(sink);
      vi.advanceTimersByTime(2_000);
      await source.stop();
      // Event times follow the wall clock; everything else must be identical.
      return sink.events.map((e) => ({ ...e, time: '' }));
    };
    const first = await run();
    expect(first.length).toBeGreaterThan(400);
    expect(await run()).toEqual(first);
  });

  it('answers requestSnapshot asynchronously with the current book of that product', async () => {
    vi.useFakeTimers();
    const source = new SimulatorSource({ products, eventsPerSecond: 20, seed: 1 });
    const sink = new RecordingFeedSink();
    await source.start(sink);
    vi.advanceTimersByTime(500);
    const before = sink.events.length;
    const lastSequence = Math.max(
      ...sink.events.filter((e) => e.product_id === 'SOL-USD').map((e) => e.sequence),
    );
    source.requestSnapshot('SOL-USD');
    source.requestSnapshot('XRP-USD');
    // Deferred: nothing is delivered from inside the request.
    expect(sink.events.length).toBe(before);
    await source.stop();
    vi.advanceTimersByTime(0);
    const delivered = sink.events.slice(before);
    expect(delivered.map((e) => [e.type, e.product_id, e.sequence])).toEqual([
      ['snapshot', 'SOL-USD', lastSequence],
    ]);
  });

  it('keeps a hub in sync: every event applies', async () => {
    vi.useFakeTimers();
    const source = new SimulatorSource({ products, eventsPerSecond: 200, seed: 8 });
    const rejected: string[] = [];
    let applied = 0;
    const hub = new Hub(
      products,
      { publish() {}, hasSubscribers: () => false },
      {
        eventApplied: () => applied++,
        conflated: () => {},
        feedLiveChanged: () => {},
        eventRejected: (reason, id, detail) => rejected.push(`${reason} ${id} ${detail}`),
        resynced: () => {},
        staleProductsChanged: () => {},
      },
      (id) => source.requestSnapshot(id),
      { ...COINBASE_TIMINGS, statusMs: 10_000, throttleMs: 0 },
    );
    await source.start(hub);
    expect(hub.notReadyReason()).toBeUndefined();
    vi.advanceTimersByTime(5_000);
    await source.stop();
    expect(rejected).toEqual([]);
    expect(applied).toBeGreaterThan(4 * 900);
  });
});

describe('EventCredit', () => {
  it('produces the configured number of events per product, not of steps', () => {
    const markets = createMarkets([spec('BTC-USD'), spec('ETH-USD')], 100, 7);
    const credit = new EventCredit(markets);
    const produced = [0, 0];
    let multiEventSteps = 0;
    for (let tick = 0; tick < 2_000; tick++) {
      const before = [...produced];
      credit.spend(3, TIME, (m) => produced[m]!++);
      for (const m of [0, 1]) if (produced[m]! - before[m]! > 3) multiEventSteps++;
    }
    // Market orders that fill several levels happen (a step count would overshoot)...
    expect(multiEventSteps).toBeGreaterThan(0);
    // ...yet each product's total stays within one step's events of 3 per tick.
    for (const total of produced) {
      expect(total).toBeGreaterThanOrEqual(6_000);
      expect(total).toBeLessThan(6_000 + 20);
    }
  });
});
