import { compareCanonical, formatUnits, parseUnits } from '../market/decimal.js';

interface Bucket {
  index: number;
  open: string;
  high: string;
  low: string;
  volumeUnits: number;
}

/**
 * Open/high/low/volume over a sliding window made of fixed buckets (minutes for 24 h, days for
 * 30 d). The aggregate of the closed buckets is recomputed only when a bucket rolls over, so a
 * trade costs O(1) and reading the statistics costs O(1).
 */
class BucketWindow {
  private readonly buckets: Array<Bucket | undefined>;
  private closedIndex = Number.NaN;
  private closed: Omit<Bucket, 'index'> | undefined;

  constructor(
    private readonly bucketMs: number,
    private readonly count: number,
  ) {
    this.buckets = new Array(count).fill(undefined);
  }

  record(price: string, sizeUnits: number, timeMs: number): void {
    const index = Math.floor(timeMs / this.bucketMs);
    // A trade timed into a bucket the cached aggregate already closed: recompute on the next read.
    if (index < this.closedIndex) this.closedIndex = Number.NaN;
    const slot = index % this.count;
    const bucket = this.buckets[slot];
    if (!bucket || bucket.index !== index) {
      this.buckets[slot] = { index, open: price, high: price, low: price, volumeUnits: sizeUnits };
      return;
    }
    if (compareCanonical(price, bucket.high) > 0) bucket.high = price;
    if (compareCanonical(price, bucket.low) < 0) bucket.low = price;
    bucket.volumeUnits += sizeUnits;
  }

  /** Aggregate over the window ending at `nowMs`, or undefined when no trade is in it. */
  read(nowMs: number): Omit<Bucket, 'index'> | undefined {
    const current = Math.floor(nowMs / this.bucketMs);
    if (this.closedIndex !== current) {
      this.closed = this.aggregate(current - this.count + 1, current - 1);
      this.closedIndex = current;
    }
    const live = this.buckets[current % this.count];
    const head = live && live.index === current ? live : undefined;
    if (!this.closed) return head && { ...head };
    if (!head) return this.closed;
    return {
      open: this.closed.open,
      high: compareCanonical(head.high, this.closed.high) > 0 ? head.high : this.closed.high,
      low: compareCanonical(head.low, this.closed.low) < 0 ? head.low : this.closed.low,
      volumeUnits: this.closed.volumeUnits + head.volumeUnits,
    };
  }

  private aggregate(from: number, to: number): Omit<Bucket, 'index'> | undefined {
    let result: Omit<Bucket, 'index'> | undefined;
    let openIndex = Number.POSITIVE_INFINITY;
    for (const bucket of this.buckets) {
      if (!bucket || bucket.index < from || bucket.index > to) continue;
      if (!result) {
        result = { ...bucket };
        openIndex = bucket.index;
        continue;
      }
      if (bucket.index < openIndex) {
        result.open = bucket.open;
        openIndex = bucket.index;
      }
      if (compareCanonical(bucket.high, result.high) > 0) result.high = bucket.high;
      if (compareCanonical(bucket.low, result.low) < 0) result.low = bucket.low;
      result.volumeUnits += bucket.volumeUnits;
    }
    return result;
  }
}

export interface TradeStats {
  readonly open24h: string;
  readonly high24h: string;
  readonly low24h: string;
  readonly volume24h: string;
  readonly volume30d: string;
}

/** 24-hour and 30-day trade statistics of one product, from the trades the gateway has seen. */
export class RollingStats {
  private readonly day = new BucketWindow(60_000, 24 * 60);
  private readonly month = new BucketWindow(86_400_000, 30);

  constructor(private readonly baseDecimals: number) {}

  record(price: string, size: string, timeMs: number): void {
    const units = parseUnits(size);
    this.day.record(price, units, timeMs);
    this.month.record(price, units, timeMs);
  }

  read(nowMs: number, lastPrice: string): TradeStats {
    const day = this.day.read(nowMs);
    const month = this.month.read(nowMs);
    const zero = formatUnits(0, this.baseDecimals);
    return {
      open24h: day?.open ?? lastPrice,
      high24h: day?.high ?? lastPrice,
      low24h: day?.low ?? lastPrice,
      volume24h: day ? formatUnits(day.volumeUnits, this.baseDecimals) : zero,
      volume30d: month ? formatUnits(month.volumeUnits, this.baseDecimals) : zero,
    };
  }
}
