export interface BackoffOptions {
  /** The shortest delay, so even the first retry never loops tightly. */
  readonly floorMs: number;
  readonly capMs: number;
}

/**
 * Exponential backoff with full jitter: the n-th consecutive failure waits a uniformly random time
 * between the floor and min(cap, floor × 2^n), so many clients failing at once spread out instead of
 * retrying together. The caller resets it once a connection has proved healthy.
 */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: () => number,
  ) {}

  /** Consecutive failures since the last reset. */
  get attempts(): number {
    return this.failures;
  }

  next(): number {
    const { floorMs, capMs } = this.options;
    // The exponent is bounded so the ceiling stays a finite number however long the outage.
    const ceiling = Math.min(capMs, floorMs * 2 ** Math.min(this.failures + 1, 40));
    this.failures += 1;
    return floorMs + this.random() * (ceiling - floorMs);
  }

  reset(): void {
    this.failures = 0;
  }
}
