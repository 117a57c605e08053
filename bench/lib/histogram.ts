/**
 * A small log-linear latency histogram (the HDR idea, without the dependency): values in whole
 * microseconds, exact below 32 µs, then 32 linear sub-buckets per power of two, so any recorded
 * value is reported within about 3 % (one sub-bucket) of its true value. Fixed memory (a few KB),
 * O(1) record, and mergeable across processes through its sparse JSON form.
 */

const SUB_BUCKET_BITS = 5;
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS;
/** Values are clamped to 2^31 - 1 µs (about 36 minutes), so Math.clz32 covers every one. */
const MAX_MICROS = 0x7fff_ffff;
const BUCKETS = SUB_BUCKETS + (31 - SUB_BUCKET_BITS) * SUB_BUCKETS;

/** The histogram as it crosses process boundaries: non-empty buckets only. */
export interface HistogramJson {
  readonly count: number;
  readonly sumMicros: number;
  readonly minMicros: number;
  readonly maxMicros: number;
  /** Values below zero (clock skew between sender and receiver), recorded as zero. */
  readonly negative: number;
  /** [bucket index, count] pairs. */
  readonly buckets: ReadonlyArray<readonly [number, number]>;
}

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

function bucketOf(micros: number): number {
  if (micros < SUB_BUCKETS) return micros;
  const magnitude = 31 - Math.clz32(micros);
  const shift = magnitude - SUB_BUCKET_BITS;
  return SUB_BUCKETS + shift * SUB_BUCKETS + ((micros >>> shift) - SUB_BUCKETS);
}

/** The highest value that falls in a bucket (what a percentile reports: "at most this"). */
function highestOf(bucket: number): number {
  if (bucket < SUB_BUCKETS) return bucket;
  const shift = Math.floor((bucket - SUB_BUCKETS) / SUB_BUCKETS);
  const sub = ((bucket - SUB_BUCKETS) % SUB_BUCKETS) + SUB_BUCKETS;
  return (sub + 1) * 2 ** shift - 1; // not <<: it would overflow 32 bits in the top buckets
}

export class LogLinearHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private count = 0;
  private sumMicros = 0;
  private minMicros = Number.POSITIVE_INFINITY;
  private maxMicros = 0;
  private negative = 0;

  static fromJson(json: HistogramJson): LogLinearHistogram {
    const histogram = new LogLinearHistogram();
    histogram.merge(json);
    return histogram;
  }

  get total(): number {
    return this.count;
  }

  /** Records a value in milliseconds (sub-millisecond precision is kept down to 1 µs). */
  recordMs(valueMs: number): void {
    if (valueMs < 0) this.negative++;
    const micros = Math.min(MAX_MICROS, Math.max(0, Math.round(valueMs * 1000)));
    this.counts[bucketOf(micros)]! += 1;
    this.count++;
    this.sumMicros += micros;
    if (micros < this.minMicros) this.minMicros = micros;
    if (micros > this.maxMicros) this.maxMicros = micros;
  }

  merge(other: HistogramJson): void {
    for (const [bucket, n] of other.buckets) this.counts[bucket]! += n;
    this.count += other.count;
    this.sumMicros += other.sumMicros;
    this.negative += other.negative;
    if (other.count > 0) {
      this.minMicros = Math.min(this.minMicros, other.minMicros);
      this.maxMicros = Math.max(this.maxMicros, other.maxMicros);
    }
  }

  /** The value at percentile `p` (0-100) in milliseconds; NaN when empty. */
  percentileMs(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.counts[bucket]!;
      if (seen >= rank) return Math.min(highestOf(bucket), this.maxMicros) / 1000;
    }
    return this.maxMicros / 1000;
  }

  summary(): LatencySummary {
    return {
      count: this.count,
      meanMs: this.count === 0 ? Number.NaN : this.sumMicros / this.count / 1000,
      p50Ms: this.percentileMs(50),
      p90Ms: this.percentileMs(90),
      p99Ms: this.percentileMs(99),
      p999Ms: this.percentileMs(99.9),
      maxMs: this.count === 0 ? Number.NaN : this.maxMicros / 1000,
    };
  }

  toJson(): HistogramJson {
    const buckets: Array<readonly [number, number]> = [];
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      const n = this.counts[bucket]!;
      if (n > 0) buckets.push([bucket, n]);
    }
    return {
      count: this.count,
      sumMicros: this.sumMicros,
      minMicros: this.count === 0 ? 0 : this.minMicros,
      maxMicros: this.maxMicros,
      negative: this.negative,
      buckets,
    };
  }
}
