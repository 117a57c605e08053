import type { ProductSpec } from '../../config/products.js';
import { formatUnits } from '../../market/decimal.js';
import type { BookChange, PriceLevel, Side } from '../../market/types.js';
import type { BookEvent, FeedEvent, SnapshotEvent, TradeEvent } from '../types.js';
import type { Random } from './random.js';

interface RestingOrder {
  readonly id: string;
  lots: number;
}

/** One side of the simulated order book: FIFO queues of orders per price, in integer ticks and lots. */
class OrderSide {
  readonly queues = new Map<number, RestingOrder[]>();
  /** Prices best first. */
  readonly prices: number[] = [];

  constructor(readonly side: Side) {}

  best(): number | undefined {
    return this.prices[0];
  }

  worst(): number | undefined {
    return this.prices[this.prices.length - 1];
  }

  add(price: number, order: RestingOrder): void {
    let queue = this.queues.get(price);
    if (!queue) {
      queue = [];
      this.queues.set(price, queue);
      // Bids best (highest) first, asks best (lowest) first.
      const direction = this.side === 'buy' ? 1 : -1;
      let i = 0;
      while (i < this.prices.length && (this.prices[i]! - price) * direction > 0) i++;
      this.prices.splice(i, 0, price);
    }
    queue.push(order);
  }

  /** Removes empty queues so the book only holds live levels. */
  prune(price: number): void {
    const queue = this.queues.get(price);
    if (queue && queue.length === 0) {
      this.queues.delete(price);
      this.prices.splice(this.prices.indexOf(price), 1);
    }
  }

  totalLots(price: number): number {
    const queue = this.queues.get(price);
    let total = 0;
    if (queue) for (let i = 0; i < queue.length; i++) total += queue[i]!.lots;
    return total;
  }
}

/** Volatility of the mid price per square root of a second (geometric Brownian motion). */
const SIGMA_PER_SQRT_SECOND = 0.0004;
const MAX_LEVELS_PER_SIDE = 40;
const MIN_LEVELS_PER_SIDE = 5;
/** Price texts kept for reuse: the book stays within a few hundred ticks of the mid for hours. */
const MAX_PRICE_TEXTS = 4_096;

/**
 * A price-time order book around a mid price that drifts as geometric Brownian motion. Limit orders
 * add size near the mid, cancels remove it, market orders walk the opposite side FIFO and produce
 * one trade per fill. Every event changes the book, so each carries the next sequence number.
 */
export class MarketModel {
  private readonly bids = new OrderSide('buy');
  private readonly asks = new OrderSide('sell');
  private readonly spacing: number;
  private readonly typicalLots: number;
  private readonly secondsPerEvent: number;
  private mid: number;
  private sequence = 1;
  private tradeId = 0;
  /** Ticks → canonical price text: each event writes one, almost always one written before. */
  private readonly priceTexts = new Map<number, string>();

  constructor(
    readonly spec: ProductSpec,
    private readonly random: Random,
    eventsPerSecond: number,
  ) {
    this.mid = spec.referencePrice * 10 ** spec.quoteDecimals;
    // Levels about 2 basis points apart, at least one tick.
    this.spacing = Math.max(1, Math.round(this.mid * 0.0002));
    this.typicalLots = Math.max(1, Math.round(spec.typicalOrderSize * 10 ** spec.baseDecimals));
    this.secondsPerEvent = 1 / eventsPerSecond;
    this.seedBook();
  }

  /**
   * Makes `sequence` the book's current sequence, so the next event carries the one after it: a
   * publisher continues above every sequence an earlier upstream incarnation wrote.
   */
  continueFrom(sequence: number): void {
    this.sequence = sequence;
  }

  snapshot(time: string): SnapshotEvent {
    const levels = (side: OrderSide): PriceLevel[] =>
      side.prices.map((p) => [this.price(p), this.size(side.totalLots(p)), side.queues.get(p)!.length]);
    return {
      type: 'snapshot',
      product_id: this.spec.id,
      sequence: this.sequence,
      time,
      bids: levels(this.bids),
      asks: levels(this.asks),
    };
  }

  /** Advances the market by one action; returns its events (one, or one per fill). */
  step(time: string): FeedEvent[] {
    this.driftMid();
    const { bids, asks } = this;
    if (bids.prices.length > MAX_LEVELS_PER_SIDE) return [this.cancelLevel(bids, bids.worst()!, time)];
    if (asks.prices.length > MAX_LEVELS_PER_SIDE) return [this.cancelLevel(asks, asks.worst()!, time)];
    if (bids.prices.length < MIN_LEVELS_PER_SIDE) return [this.placeLimit(bids, time)];
    if (asks.prices.length < MIN_LEVELS_PER_SIDE) return [this.placeLimit(asks, time)];
    const roll = this.random.next();
    if (roll < 0.5) return [this.placeLimit(this.random.next() < 0.5 ? this.bids : this.asks, time)];
    if (roll < 0.82) return [this.cancelRandom(time)];
    return this.marketOrder(time);
  }

  private driftMid(): void {
    const s = SIGMA_PER_SQRT_SECOND;
    const dt = this.secondsPerEvent;
    this.mid *= Math.exp(s * Math.sqrt(dt) * this.random.normal() - 0.5 * s * s * dt);
  }

  private seedBook(): void {
    const mid = Math.round(this.mid);
    for (let i = 1; i <= 20; i++) {
      for (const side of [this.bids, this.asks]) {
        const price = side === this.bids ? mid - i * this.spacing : mid + i * this.spacing;
        if (price <= 0) continue;
        const orders = 1 + this.random.below(3);
        for (let k = 0; k < orders; k++) side.add(price, { id: this.random.uuid(), lots: this.orderLots() });
      }
    }
  }

  private orderLots(): number {
    return Math.max(1, Math.round(this.typicalLots * Math.exp(0.8 * this.random.normal())));
  }

  private placeLimit(side: OrderSide, time: string): BookEvent {
    const distance = this.spacing * (0.3 + this.random.exponential(4));
    let price = side === this.bids ? Math.floor(this.mid - distance) : Math.ceil(this.mid + distance);
    // Never cross: a limit order that would reach the other side rests one tick inside it.
    const opposite = side === this.bids ? this.asks.best() : this.bids.best();
    if (opposite !== undefined) {
      price = side === this.bids ? Math.min(price, opposite - 1) : Math.max(price, opposite + 1);
    }
    price = Math.max(1, price);
    // An ask at one tick leaves no price for a bid: the market falls back to a cancel.
    if (side === this.bids && opposite !== undefined && price >= opposite) return this.cancelRandom(time);
    side.add(price, { id: this.random.uuid(), lots: this.orderLots() });
    return this.bookEvent(side, price, time);
  }

  private cancelRandom(time: string): BookEvent {
    const preferred = this.random.next() < 0.5 ? this.bids : this.asks;
    const side = preferred.prices.length > 0 ? preferred : preferred === this.bids ? this.asks : this.bids;
    // Favour the outer levels, as real cancels do, so the book stays centred on the mid.
    const index = Math.min(
      side.prices.length - 1,
      Math.floor(side.prices.length * Math.sqrt(this.random.next())),
    );
    const price = side.prices[index]!;
    const queue = side.queues.get(price)!;
    queue.splice(this.random.below(queue.length), 1);
    side.prune(price);
    return this.bookEvent(side, price, time);
  }

  private cancelLevel(side: OrderSide, price: number, time: string): BookEvent {
    side.queues.get(price)!.length = 0;
    side.prune(price);
    return this.bookEvent(side, price, time);
  }

  private marketOrder(time: string): TradeEvent[] {
    const bestBid = this.bids.best()!;
    const bestAsk = this.asks.best()!;
    // Takers push the book towards the drifting mid: buy more often when the mid is above the book's.
    const skew = (this.mid - (bestBid + bestAsk) / 2) / (this.spacing * 4);
    const takerBuys = this.random.next() < Math.min(0.9, Math.max(0.1, 0.5 + skew));
    const makers = takerBuys ? this.asks : this.bids;
    const takerOrderId = this.random.uuid();
    let remaining = this.orderLots();
    const trades: TradeEvent[] = [];
    while (remaining > 0 && makers.prices.length > 1) {
      const price = makers.best()!;
      const queue = makers.queues.get(price)!;
      const maker = queue[0]!;
      const fill = Math.min(maker.lots, remaining);
      maker.lots -= fill;
      remaining -= fill;
      if (maker.lots === 0) queue.shift();
      makers.prune(price);
      this.tradeId++;
      // Written out rather than spread over a book event: spreading and overwriting `type` made
      // every trade a slow, one-off object shape.
      trades.push({
        type: 'trade',
        product_id: this.spec.id,
        sequence: ++this.sequence,
        time,
        trade_id: this.tradeId,
        maker_order_id: maker.id,
        taker_order_id: takerOrderId,
        side: makers.side,
        price: this.price(price),
        size: this.size(fill),
        changes: [this.levelChange(makers, price)],
      });
    }
    return trades;
  }

  private bookEvent(side: OrderSide, price: number, time: string): BookEvent {
    const changes = [this.levelChange(side, price)];
    return { type: 'book', product_id: this.spec.id, sequence: ++this.sequence, time, changes };
  }

  /** The level at `price` as it is now: its total size and order count (zero once it is gone). */
  private levelChange(side: OrderSide, price: number): BookChange {
    return [
      side.side,
      this.price(price),
      this.size(side.totalLots(price)),
      side.queues.get(price)?.length ?? 0,
    ];
  }

  private price(ticks: number): string {
    let text = this.priceTexts.get(ticks);
    if (text === undefined) {
      // The mid drifts: start over rather than keep every price it ever passed.
      if (this.priceTexts.size >= MAX_PRICE_TEXTS) this.priceTexts.clear();
      text = formatUnits(ticks, this.spec.quoteDecimals);
      this.priceTexts.set(ticks, text);
    }
    return text;
  }

  private size(lots: number): string {
    return formatUnits(lots, this.spec.baseDecimals);
  }
}
