import type { ProductSpec } from '../config/products.js';
import { compareEpochs } from '../feeds/epoch.js';
import type { FeedEvent, FeedSink, SnapshotEvent, TradeEvent } from '../feeds/types.js';
import { canonicalPattern, isZero } from '../market/decimal.js';
import { epochMs, isIsoTime, isoMicros, nowMicros } from '../market/time.js';
import { type BookChange, CHANNELS, type Channel, type PriceLevel, topicOf } from '../market/types.js';
import { L2Book } from './book.js';
import {
  encodeHeartbeat,
  encodeL2Update,
  encodeMatch,
  encodeSnapshot,
  encodeStatus,
  encodeTicker,
  restProduct,
} from './messages.js';
import { RollingStats } from './rolling-stats.js';
import { Throttle } from './throttle.js';

/** Where the hub hands each serialised message; the transport delivers it to the topic's subscribers. */
export interface PublicationSink {
  publish(topic: string, channel: Channel, payload: string, receivedAt: number): void;
  /**
   * Whether a message published on `topic` now would reach anyone. The hub builds messages only for
   * topics that have subscribers; a new subscriber's first messages come from the hub's state
   * (initialMessages), so it must count here from the moment those are taken.
   */
  hasSubscribers(topic: string): boolean;
}

/** What the hub reports about upstream events; wired to metrics and sampled logs. */
export interface HubObserver {
  eventApplied(): void;
  /** The upstream feed went stale (false) or live again (true). */
  feedLiveChanged(live: boolean): void;
  /** A message merged into a pending one by throttling/batching (one message fewer sent). */
  conflated(channel: Channel): void;
  eventRejected(reason: InvalidEventReason, productId: string, detail: string): void;
  /** A bootstrapped product's book was replaced by a snapshot. */
  resynced(reason: ResyncReason): void;
  /** How many products are stale (not served as live) after an upstream incarnation change. */
  staleProductsChanged(count: number): void;
}

/**
 * `gap`: the book fell behind within one upstream incarnation (a sequence gap, a crossed book).
 * `incarnation`: a new upstream incarnation's snapshot replaced the previous one's book.
 */
export type ResyncReason = 'gap' | 'incarnation';

export type InvalidEventReason =
  | 'unknown_product'
  | 'malformed'
  | 'not_bootstrapped'
  | 'stale_sequence'
  | 'sequence_gap'
  | 'awaiting_resync'
  | 'crossed_book'
  | 'superseded_incarnation'
  | 'new_incarnation'
  | 'sequence_regression';

export interface HubOptions {
  /**
   * The feed's events are well-formed by construction (FeedSource.wellFormed): the per-event
   * format checks are skipped. Sequence, bootstrap and crossing checks apply to every feed.
   */
  readonly wellFormedFeed: boolean;
}

/** Asks the feed for a fresh snapshot of a product. */
export type SnapshotRequester = (productId: string) => void;

export interface HubTimings {
  readonly heartbeatMs: number;
  readonly level2BatchMs: number;
  readonly tickerBatchMs: number;
  readonly statusMs: number;
  /** WS_THROTTLE_MS: minimum interval between a product's updates on level2 and ticker (0: every update). */
  readonly throttleMs: number;
}

/** The feed's documented cadences: heartbeat 1 s, level2_batch 50 ms, ticker_batch 5 s. */
export const COINBASE_TIMINGS: Omit<HubTimings, 'statusMs' | 'throttleMs'> = {
  heartbeatMs: 1_000,
  level2BatchMs: 50,
  tickerBatchMs: 5_000,
};

/** Book changes merged over an interval: each side and price once, with its latest size. */
interface MergedChanges {
  readonly changes: Map<string, BookChange>;
  sequence: number;
  time: string;
  /** The earliest merged event's arrival, for the feed-to-send latency. */
  readonly receivedAt: number;
}

interface TickerUpdate {
  payload: string;
  readonly receivedAt: number;
}

/** Each side and price once, with its latest change, in the order each first appears. */
function byLevel(changes: readonly BookChange[]): Map<string, BookChange> {
  const levels = new Map<string, BookChange>();
  for (const change of changes) levels.set(`${change[0]}${change[1]}`, change);
  return levels;
}

function mergeChanges(pending: MergedChanges | undefined, next: MergedChanges): MergedChanges {
  if (!pending) return next;
  for (const [key, change] of next.changes) pending.changes.set(key, change);
  pending.sequence = next.sequence;
  pending.time = next.time;
  return pending;
}

function latestTicker(pending: TickerUpdate | undefined, next: TickerUpdate): TickerUpdate {
  if (!pending) return next;
  pending.payload = next.payload;
  return pending;
}

const RESYNC_RETRY_MS = 1_000;

/**
 * The ticker of a trade, from the book and statistics as they were right after it, serialised only
 * when first needed: when nobody subscribes to the ticker channels, only a later subscriber's
 * first message needs it. Reading the statistics later gives the same figures as long as no other
 * trade was recorded since, which holds because only the latest trade's ticker is kept.
 */
class TradeTicker {
  private payload: string | undefined;

  constructor(
    private readonly trade: TradeEvent,
    private readonly stats: RollingStats,
    private readonly statsAtMs: number,
    private readonly bid: PriceLevel | undefined,
    private readonly ask: PriceLevel | undefined,
  ) {}

  encoded(): string {
    this.payload ??= encodeTicker(
      this.trade,
      this.stats.read(this.statsAtMs, this.trade.price),
      this.bid,
      this.ask,
    );
    return this.payload;
  }
}

class ProductState {
  readonly book = new L2Book();
  stats: RollingStats;
  readonly pricePattern: RegExp;
  readonly sizePattern: RegExp;
  /** 0 until the first snapshot bootstraps the product. */
  sequence = 0;
  time = '';
  awaitingSnapshot = true;
  /**
   * The newest upstream incarnation seen for the product: only its events and snapshots are
   * applied. It moves ahead of the book's own incarnation when a newer one's event arrives before
   * its snapshot.
   */
  epoch: string | undefined;
  /** Why the product is not served as live, while it waits for a new incarnation's snapshot. */
  stale: string | undefined;
  /** performance.now() of the last snapshot request, to retry without flooding the feed. */
  lastResyncRequest = Number.NEGATIVE_INFINITY;
  lastTradeId = 0;
  lastTrade: TradeEvent | undefined;
  latestTicker: TradeTicker | undefined;
  /** The product's topic on each channel. */
  readonly topics: Readonly<Record<Channel, string>>;
  private snapshotCache: { sequence: number; payload: string } | undefined;
  /** Conflation per channel, once for all subscribers: its cost grows with products, not clients. */
  readonly level2: Throttle<MergedChanges>;
  readonly level2Batch: Throttle<MergedChanges>;
  readonly ticker: Throttle<TickerUpdate>;
  readonly tickerBatch: Throttle<TickerUpdate>;

  constructor(
    readonly spec: ProductSpec,
    timings: HubTimings,
    sink: PublicationSink,
    conflated: (channel: Channel) => void,
  ) {
    this.stats = new RollingStats(spec.baseDecimals);
    this.topics = Object.fromEntries(CHANNELS.map((c) => [c, topicOf(c, spec.id)])) as Record<
      Channel,
      string
    >;
    this.pricePattern = canonicalPattern(spec.quoteDecimals);
    this.sizePattern = canonicalPattern(spec.baseDecimals);
    const publish = (channel: Channel, payload: string, receivedAt: number) =>
      sink.publish(this.topics[channel], channel, payload, receivedAt);
    const changes = (channel: 'level2' | 'level2_batch', intervalMs: number) =>
      new Throttle<MergedChanges>(
        intervalMs,
        mergeChanges,
        (m) =>
          publish(channel, encodeL2Update(spec.id, m.changes.values(), m.time, m.sequence), m.receivedAt),
        () => conflated(channel),
      );
    const tickers = (channel: 'ticker' | 'ticker_batch', intervalMs: number) =>
      new Throttle<TickerUpdate>(
        intervalMs,
        latestTicker,
        (t) => publish(channel, t.payload, t.receivedAt),
        () => conflated(channel),
      );
    this.level2 = changes('level2', timings.throttleMs);
    this.level2Batch = changes('level2_batch', Math.max(timings.level2BatchMs, timings.throttleMs));
    this.ticker = tickers('ticker', timings.throttleMs);
    this.tickerBatch = tickers('ticker_batch', Math.max(timings.tickerBatchMs, timings.throttleMs));
  }

  snapshot(): string {
    if (this.snapshotCache?.sequence !== this.sequence) {
      this.snapshotCache = {
        sequence: this.sequence,
        payload: encodeSnapshot(this.spec.id, this.book, this.sequence, this.time),
      };
    }
    return this.snapshotCache.payload;
  }
}

/**
 * Keeps per-product state (L2 book, last trade, 24 h statistics, sequence) from the upstream
 * events and turns each event into messages serialised once, handed to the sink per topic. It
 * never knows which feed source feeds it, nor how messages reach clients.
 */
export class Hub implements FeedSink {
  private readonly products = new Map<string, ProductState>();
  private readonly timers: NodeJS.Timeout[] = [];
  private statusPayload: string;
  private readonly specs: readonly ProductSpec[];
  /** Why the whole feed is down, undefined while it is live. */
  private feedDown: string | undefined;
  private staleProducts = 0;

  constructor(
    specs: readonly ProductSpec[],
    private readonly sink: PublicationSink,
    private readonly observer: HubObserver,
    private readonly requestSnapshot: SnapshotRequester,
    private readonly timings: HubTimings,
    private readonly options: HubOptions = { wellFormedFeed: false },
  ) {
    for (const spec of specs) {
      this.products.set(spec.id, new ProductState(spec, timings, sink, (c) => observer.conflated(c)));
    }
    this.specs = specs;
    this.statusPayload = this.encodeStatus();
  }

  onLiveChanged(live: boolean, reason: string | undefined): void {
    this.feedDown = live ? undefined : (reason ?? 'upstream unavailable');
    this.publishStatus();
    this.observer.feedLiveChanged(live);
  }

  /** The `status` channel tells clients at once; its products carry why in status_message. */
  private publishStatus(): void {
    this.statusPayload = this.encodeStatus();
    this.sink.publish('status', 'status', this.statusPayload, epochMs());
  }

  private encodeStatus(): string {
    const feed = this.feedDown === undefined ? null : `feed stale: ${this.feedDown}`;
    return encodeStatus(this.specs, (spec) => {
      const stale = this.products.get(spec.id)?.stale;
      return stale === undefined ? feed : `product stale: ${stale}`;
    });
  }

  /** Marks a product as not served as live (status, /readyz, metrics) until a snapshot clears it. */
  private setStale(state: ProductState, reason: string | undefined): void {
    if (state.stale === reason) return;
    if ((state.stale === undefined) !== (reason === undefined)) {
      this.staleProducts += reason === undefined ? -1 : 1;
      this.observer.staleProductsChanged(this.staleProducts);
    }
    state.stale = reason;
    this.publishStatus();
  }

  onUndecodable(productId: string, detail: string): void {
    this.observer.eventRejected('malformed', productId, detail);
  }

  start(): void {
    const every = (ms: number, fn: () => void) => {
      const timer = setInterval(fn, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.timings.heartbeatMs, () => this.publishHeartbeats());
    every(this.timings.statusMs, () => this.sink.publish('status', 'status', this.statusPayload, epochMs()));
  }

  stop(): void {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    for (const state of this.products.values()) {
      for (const throttle of [state.level2, state.level2Batch, state.ticker, state.tickerBatch])
        throttle.discard();
    }
  }

  /**
   * Undefined once every product has a live book; otherwise why not, naming the stale products.
   * A product stale after an upstream incarnation change is reported until its resync.
   */
  notReadyReason(): string | undefined {
    const stale: string[] = [];
    for (const state of this.products.values()) {
      if (state.sequence === 0) return 'waiting for the first snapshot of every product';
      if (state.stale !== undefined) stale.push(`${state.spec.id} stale: ${state.stale}`);
    }
    return stale.length === 0 ? undefined : stale.join('; ');
  }

  /** Messages a new subscriber receives before the live stream, consistent with what follows. */
  initialMessages(channel: Channel, productId: string): string[] {
    if (channel === 'status') return [this.statusPayload];
    const state = this.products.get(productId);
    if (!state || state.sequence === 0) return [];
    switch (channel) {
      case 'level2':
      case 'level2_batch':
        return [state.snapshot()];
      case 'matches':
        return state.lastTrade ? [encodeMatch(state.lastTrade, 'last_match')] : [];
      case 'ticker':
        return this.initialTicker(state, state.ticker);
      case 'ticker_batch':
        return this.initialTicker(state, state.tickerBatch);
      case 'heartbeat':
        return [];
    }
  }

  /**
   * The latest trade's ticker; but while a ticker waits out the channel's interval, the last one
   * that went out on it, the pending one following when the interval ends.
   */
  private initialTicker(state: ProductState, channel: Throttle<TickerUpdate>): string[] {
    if (channel.hasPending && channel.lastEmitted) return [channel.lastEmitted.payload];
    return state.latestTicker ? [state.latestTicker.encoded()] : [];
  }

  hasProduct(productId: string): boolean {
    return this.products.has(productId);
  }

  // --- REST views, in the Coinbase Exchange REST shapes ---

  restProducts() {
    return [...this.products.values()].map((s) => restProduct(s.spec));
  }

  restProduct(productId: string) {
    const state = this.products.get(productId);
    return state && restProduct(state.spec);
  }

  restBook(productId: string, level: 1 | 2) {
    const state = this.products.get(productId);
    if (!state) return undefined;
    const depth = level === 1 ? 1 : Number.POSITIVE_INFINITY;
    return {
      bids: state.book.bids.top(depth),
      asks: state.book.asks.top(depth),
      sequence: state.sequence,
      auction_mode: false,
      auction: null,
      time: state.time || isoMicros(nowMicros()),
    };
  }

  restTicker(productId: string) {
    const state = this.products.get(productId);
    if (!state) return undefined;
    const trade = state.lastTrade;
    const zeroSize = state.spec.baseDecimals === 0 ? '0' : `0.${'0'.repeat(state.spec.baseDecimals)}`;
    const lastPrice = trade?.price ?? state.book.bids.best()?.[0] ?? '0';
    return {
      ask: state.book.asks.best()?.[0] ?? null,
      bid: state.book.bids.best()?.[0] ?? null,
      volume: state.stats.read(Date.now(), lastPrice).volume24h,
      trade_id: trade?.trade_id ?? 0,
      price: lastPrice,
      size: trade?.size ?? zeroSize,
      time: trade?.time ?? isoMicros(nowMicros()),
    };
  }

  // --- upstream events ---

  onEvent(event: FeedEvent, receivedAt: number): void {
    const state = this.products.get(event.product_id);
    if (!state) {
      this.observer.eventRejected('unknown_product', String(event.product_id), 'product is not configured');
      return;
    }
    const problem = this.options.wellFormedFeed ? undefined : this.malformation(event, state);
    if (problem) {
      this.observer.eventRejected('malformed', state.spec.id, problem);
      return;
    }
    if (event.type === 'snapshot') {
      this.applySnapshot(state, event, receivedAt);
      return;
    }
    if (state.sequence === 0) {
      this.reject(state, 'not_bootstrapped', `event ${event.sequence} before the first snapshot`);
      return;
    }
    const incarnation = compareEpochs(event.epoch, state.epoch);
    if (incarnation < 0) {
      // Two writers on one product: the newest incarnation wins, the other's events never mix in.
      this.observer.eventRejected(
        'superseded_incarnation',
        state.spec.id,
        `event ${event.sequence} of incarnation ${event.epoch ?? '(none)'}, older than ${state.epoch}`,
      );
      return;
    }
    if (incarnation > 0) {
      const previous = state.epoch ?? '(none)';
      state.epoch = event.epoch;
      this.setStale(
        state,
        `upstream incarnation ${event.epoch} replaced ${previous}; resynchronising from its snapshot`,
      );
      this.reject(
        state,
        'new_incarnation',
        `event ${event.sequence} of incarnation ${event.epoch} before its snapshot`,
      );
      return;
    }
    if (event.sequence <= state.sequence) {
      if (state.awaitingSnapshot) {
        // Entries replayed up to a resync's snapshot: already covered by the book.
        this.observer.eventRejected(
          'stale_sequence',
          state.spec.id,
          `${event.sequence} <= ${state.sequence}`,
        );
        return;
      }
      // In stream order, sequences of one incarnation only go up: an upstream restarted without
      // an epoch and without continuing its sequences. Its events describe another book.
      this.setStale(
        state,
        `upstream sequence went back from ${state.sequence} to ${event.sequence}; waiting for a snapshot above ${state.sequence}`,
      );
      this.reject(state, 'sequence_regression', `${event.sequence} after ${state.sequence}`);
      return;
    }
    if (state.awaitingSnapshot) {
      this.requestResync(state);
      this.observer.eventRejected(
        'awaiting_resync',
        state.spec.id,
        `event ${event.sequence} while resynchronising`,
      );
      return;
    }
    if (event.sequence !== state.sequence + 1) {
      this.reject(state, 'sequence_gap', `expected ${state.sequence + 1}, got ${event.sequence}`);
      return;
    }
    if (event.type === 'trade' && !this.options.wellFormedFeed && event.trade_id <= state.lastTradeId) {
      this.observer.eventRejected(
        'malformed',
        state.spec.id,
        `trade_id ${event.trade_id} does not follow ${state.lastTradeId}`,
      );
      return;
    }
    if (!state.book.apply(event.changes)) {
      this.reject(state, 'crossed_book', `event ${event.sequence} would cross the book`);
      return;
    }
    state.sequence = event.sequence;
    state.time = event.time;
    this.observer.eventApplied();
    this.publishBookChanges(state, event.changes, receivedAt);
    if (event.type === 'trade') this.publishTrade(state, event, receivedAt);
  }

  /** A rejection that leaves the product's book behind upstream: resynchronise from a snapshot. */
  private reject(state: ProductState, reason: InvalidEventReason, detail: string): void {
    this.observer.eventRejected(reason, state.spec.id, detail);
    state.awaitingSnapshot = true;
    this.requestResync(state);
  }

  /** Asks the feed for a snapshot, at most once per RESYNC_RETRY_MS per product, retrying while events show it is still needed. */
  private requestResync(state: ProductState): void {
    const now = performance.now();
    if (now - state.lastResyncRequest < RESYNC_RETRY_MS) return;
    state.lastResyncRequest = now;
    this.requestSnapshot(state.spec.id);
  }

  private applySnapshot(state: ProductState, event: SnapshotEvent, receivedAt: number): void {
    const bootstrapped = state.sequence > 0;
    const incarnation = bootstrapped ? compareEpochs(event.epoch, state.epoch) : 1;
    if (incarnation < 0) {
      this.observer.eventRejected(
        'superseded_incarnation',
        state.spec.id,
        `snapshot ${event.sequence} of incarnation ${event.epoch ?? '(none)'}, older than ${state.epoch}`,
      );
      return;
    }
    // Another incarnation's book at the same sequence would differ under an unchanged sequence.
    const replacesBook = bootstrapped && (incarnation > 0 || state.stale !== undefined);
    if (event.sequence < state.sequence || (replacesBook && event.sequence === state.sequence)) {
      if (replacesBook) {
        // Clients' sequences never go backwards: refused until a snapshot of it comes above them.
        state.epoch = event.epoch;
        state.awaitingSnapshot = true;
        this.setStale(
          state,
          `upstream ${event.epoch === undefined ? '(no epoch)' : `incarnation ${event.epoch}`} restarted sequences at ${event.sequence}, not above ${state.sequence}; waiting for a snapshot above it`,
        );
        this.observer.eventRejected(
          'sequence_regression',
          state.spec.id,
          `snapshot ${event.sequence} <= ${state.sequence}`,
        );
        return;
      }
      this.observer.eventRejected(
        'stale_sequence',
        state.spec.id,
        `snapshot ${event.sequence} < ${state.sequence}`,
      );
      return;
    }
    if (!state.book.reset(event.bids, event.asks)) {
      state.sequence = 0;
      this.reject(state, 'crossed_book', `snapshot ${event.sequence} is crossed`);
      return;
    }
    const resync = bootstrapped && state.awaitingSnapshot;
    state.sequence = event.sequence;
    state.time = event.time;
    state.awaitingSnapshot = false;
    state.epoch = event.epoch;
    // Changes merged before a resync describe a book that no longer exists.
    state.level2.discard();
    state.level2Batch.discard();
    if (replacesBook) {
      this.forgetTrades(state);
      this.observer.resynced('incarnation');
    } else if (resync) {
      this.observer.resynced('gap');
    }
    this.setStale(state, undefined);
    this.observer.eventApplied();
    // Subscribers of a resynchronised product rebuild their books from this snapshot.
    const payload = state.snapshot();
    this.sink.publish(state.topics.level2, 'level2', payload, receivedAt);
    this.sink.publish(state.topics.level2_batch, 'level2_batch', payload, receivedAt);
  }

  /** A new upstream incarnation is another market: its trade ids and statistics start afresh. */
  private forgetTrades(state: ProductState): void {
    state.lastTrade = undefined;
    state.latestTicker = undefined;
    state.lastTradeId = 0;
    state.stats = new RollingStats(state.spec.baseDecimals);
    state.ticker.discard();
    state.tickerBatch.discard();
  }

  /**
   * The event's changes on the book channels that have subscribers. On one without, what is
   * pending is dropped: it would miss the changes skipped from now on, and a later subscriber
   * starts from a snapshot of the book anyway.
   */
  private publishBookChanges(state: ProductState, changes: readonly BookChange[], receivedAt: number): void {
    const { sequence, time } = state;
    const { level2, level2_batch } = state.topics;
    if (!this.sink.hasSubscribers(level2)) {
      if (state.level2.hasPending) state.level2.discard();
    } else if (this.timings.throttleMs === 0) {
      // Every event on its own (WS_THROTTLE_MS=0): nothing to merge or hold back.
      const levels = changes.length === 1 ? changes : byLevel(changes).values();
      this.sink.publish(level2, 'level2', encodeL2Update(state.spec.id, levels, time, sequence), receivedAt);
    } else {
      state.level2.offer({ changes: byLevel(changes), sequence, time, receivedAt });
    }
    if (!this.sink.hasSubscribers(level2_batch)) {
      if (state.level2Batch.hasPending) state.level2Batch.discard();
    } else {
      state.level2Batch.offer({ changes: byLevel(changes), sequence, time, receivedAt });
    }
  }

  private publishTrade(state: ProductState, trade: TradeEvent, receivedAt: number): void {
    state.lastTrade = trade;
    state.lastTradeId = trade.trade_id;
    state.stats.record(trade.price, trade.size, Date.parse(trade.time));
    const { matches, ticker, ticker_batch } = state.topics;
    // Matches are never conflated or delayed.
    if (this.sink.hasSubscribers(matches))
      this.sink.publish(matches, 'matches', encodeMatch(trade, 'match'), receivedAt);
    const { book } = state;
    const latest = new TradeTicker(trade, state.stats, Date.now(), book.bids.best(), book.asks.best());
    state.latestTicker = latest;
    this.offerTicker(state.ticker, ticker, latest, receivedAt);
    this.offerTicker(state.tickerBatch, ticker_batch, latest, receivedAt);
  }

  /** As for the book channels, a ticker channel without subscribers drops what it holds. */
  private offerTicker(
    channel: Throttle<TickerUpdate>,
    topic: string,
    ticker: TradeTicker,
    receivedAt: number,
  ): void {
    if (this.sink.hasSubscribers(topic)) channel.offer({ payload: ticker.encoded(), receivedAt });
    else if (channel.hasPending) channel.discard();
  }

  private publishHeartbeats(): void {
    const time = isoMicros(nowMicros());
    const now = epochMs();
    for (const state of this.products.values()) {
      const topic = state.topics.heartbeat;
      if (state.sequence === 0 || !this.sink.hasSubscribers(topic)) continue;
      const id = state.spec.id;
      this.sink.publish(
        topic,
        'heartbeat',
        encodeHeartbeat(id, state.sequence, state.lastTradeId, time),
        now,
      );
    }
  }

  /** Value checks for a source that is not well-formed by construction: a malformed event must not reach the book. */
  private malformation(event: FeedEvent, state: ProductState): string | undefined {
    if (!Number.isSafeInteger(event.sequence) || event.sequence < 1)
      return 'sequence is not a positive integer';
    if (typeof event.time !== 'string' || !isIsoTime(event.time)) return 'time is not ISO-8601 UTC';
    if (event.type === 'snapshot') {
      return this.badLevels(event.bids, state) ?? this.badLevels(event.asks, state);
    }
    if (!Array.isArray(event.changes) || event.changes.length === 0) return 'changes is empty';
    for (const change of event.changes) {
      if (!Array.isArray(change) || (change[0] !== 'buy' && change[0] !== 'sell'))
        return 'change side is invalid';
      const problem = this.badLevel(change[1], change[2], change[3], state, true);
      if (problem) return problem;
    }
    if (event.type === 'trade') {
      // Whether it follows the last trade id is checked once the event is known to be of the book's incarnation.
      if (!Number.isSafeInteger(event.trade_id) || event.trade_id < 1)
        return 'trade_id is not a positive integer';
      if (event.side !== 'buy' && event.side !== 'sell') return 'trade side is invalid';
      if (typeof event.maker_order_id !== 'string' || typeof event.taker_order_id !== 'string') {
        return 'order ids are missing';
      }
      return this.badLevel(event.price, event.size, 1, state, false);
    }
    return undefined;
  }

  private badLevels(levels: readonly PriceLevel[], state: ProductState): string | undefined {
    if (!Array.isArray(levels)) return 'levels are not an array';
    for (const level of levels) {
      const problem = Array.isArray(level)
        ? this.badLevel(level[0], level[1], level[2], state, false)
        : 'bad level';
      if (problem) return problem;
    }
    return undefined;
  }

  private badLevel(
    price: unknown,
    size: unknown,
    orders: unknown,
    state: ProductState,
    zeroAllowed: boolean,
  ) {
    if (typeof price !== 'string' || !state.pricePattern.test(price) || isZero(price)) {
      return `price ${JSON.stringify(price)} is not a positive multiple of ${state.spec.quoteIncrement}`;
    }
    if (typeof size !== 'string' || !state.sizePattern.test(size) || (!zeroAllowed && isZero(size))) {
      return `size ${JSON.stringify(size)} is not a multiple of ${state.spec.baseIncrement}`;
    }
    if (!Number.isSafeInteger(orders) || (orders as number) < 0)
      return 'orders is not a non-negative integer';
    return undefined;
  }
}
