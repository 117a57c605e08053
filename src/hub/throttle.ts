/**
 * Lets values through at most once per interval. The first value after a quiet interval goes out
 * at once (no added latency when updates are sparse); values arriving sooner are merged into one
 * pending value that goes out when the interval ends. Interval 0 passes everything straight on.
 */
export class Throttle<T> {
  private pending: T | undefined;
  private lastEmit = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  /** The last value that went out, for new subscribers. */
  lastEmitted: T | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly merge: (pending: T | undefined, next: T) => T,
    private readonly emit: (value: T) => void,
    /** Called each time a value is merged into an existing pending one (one message fewer sent). */
    private readonly onConflated: () => void,
  ) {}

  get hasPending(): boolean {
    return this.pending !== undefined;
  }

  offer(value: T): void {
    const now = performance.now();
    if (this.pending === undefined && now - this.lastEmit >= this.intervalMs) {
      this.send(value, now);
      return;
    }
    if (this.pending !== undefined) this.onConflated();
    this.pending = this.merge(this.pending, value);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.lastEmit + this.intervalMs - now));
      this.timer.unref();
    }
  }

  /** Drops the pending value (it was superseded, e.g. by a resynchronising snapshot). */
  discard(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
  }

  private flush(): void {
    this.timer = undefined;
    const value = this.pending;
    if (value === undefined) return;
    this.pending = undefined;
    this.send(value, performance.now());
  }

  private send(value: T, now: number): void {
    this.lastEmit = now;
    this.lastEmitted = value;
    this.emit(value);
  }
}
