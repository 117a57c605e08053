import { compareCanonical, isZero } from '../market/decimal.js';
import type { BookChange, PriceLevel, Side } from '../market/types.js';

/** One side of an aggregated (L2) book, kept sorted best price first. */
class BookSide {
  private readonly levels = new Map<string, PriceLevel>();
  /** Prices best first: descending for bids, ascending for asks. */
  private readonly prices: string[] = [];

  constructor(private readonly direction: 1 | -1) {}

  get size(): number {
    return this.prices.length;
  }

  best(): PriceLevel | undefined {
    const price = this.prices[0];
    return price === undefined ? undefined : this.levels.get(price);
  }

  get(price: string): PriceLevel | undefined {
    return this.levels.get(price);
  }

  /** Sets a level's absolute size (zero removes it); returns the level it replaced. */
  set(price: string, size: string, orders: number): PriceLevel | undefined {
    const previous = this.levels.get(price);
    if (isZero(size)) {
      if (previous) {
        this.levels.delete(price);
        this.prices.splice(this.indexOf(price), 1);
      }
      return previous;
    }
    this.levels.set(price, [price, size, orders]);
    if (!previous) this.prices.splice(this.indexOf(price), 0, price);
    return previous;
  }

  /** Levels best first, at most `depth` of them. */
  top(depth = Number.POSITIVE_INFINITY): PriceLevel[] {
    const count = Math.min(depth, this.prices.length);
    const out = new Array<PriceLevel>(count);
    for (let i = 0; i < count; i++) out[i] = this.levels.get(this.prices[i]!)!;
    return out;
  }

  clear(): void {
    this.levels.clear();
    this.prices.length = 0;
  }

  /** Binary search: the index of `price`, or where it would be inserted. */
  private indexOf(price: string): number {
    let lo = 0;
    let hi = this.prices.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareCanonical(this.prices[mid]!, price) * this.direction < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** An aggregated price-level book that refuses changes that would cross it. */
export class L2Book {
  readonly bids = new BookSide(-1);
  readonly asks = new BookSide(1);

  side(side: Side): BookSide {
    return side === 'buy' ? this.bids : this.asks;
  }

  isCrossed(): boolean {
    const bid = this.bids.best();
    const ask = this.asks.best();
    return bid !== undefined && ask !== undefined && compareCanonical(bid[0], ask[0]) >= 0;
  }

  /** Replaces the whole book. Returns false (leaving the book empty) if the levels cross. */
  reset(bids: readonly PriceLevel[], asks: readonly PriceLevel[]): boolean {
    this.bids.clear();
    this.asks.clear();
    for (const [price, size, orders] of bids) this.bids.set(price, size, orders);
    for (const [price, size, orders] of asks) this.asks.set(price, size, orders);
    if (!this.isCrossed()) return true;
    this.bids.clear();
    this.asks.clear();
    return false;
  }

  /** Applies the changes atomically: if the result would cross, nothing changes and it returns false. */
  apply(changes: readonly BookChange[]): boolean {
    if (changes.length === 1) return this.applyOne(changes[0]!);
    const undo: Array<[Side, string, PriceLevel | undefined]> = [];
    for (const [side, price, size, orders] of changes) {
      undo.push([side, price, this.side(side).set(price, size, orders)]);
    }
    if (!this.isCrossed()) return true;
    for (let i = undo.length - 1; i >= 0; i--) {
      const [side, price, previous] = undo[i]!;
      if (previous) this.side(side).set(price, previous[1], previous[2]);
      else this.side(side).set(price, '0', 0);
    }
    return false;
  }

  /**
   * Most events change one level: checked before it is made, with nothing to undo. The book is
   * never crossed, so one removal cannot cross it, and one bid (ask) crosses it only if it reaches
   * the best ask (bid).
   */
  private applyOne([side, price, size, orders]: BookChange): boolean {
    if (!isZero(size)) {
      const opposite = side === 'buy' ? this.asks.best() : this.bids.best();
      if (opposite && compareCanonical(price, opposite[0]) * (side === 'buy' ? 1 : -1) >= 0) return false;
    }
    this.side(side).set(price, size, orders);
    return true;
  }
}
