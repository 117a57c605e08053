import type { ProductSpec } from '../../config/products.js';
import { MarketModel } from './market.js';
import { Random } from './random.js';

/** Bounds the catch-up after a stalled event loop, so a stall does not turn into a burst of thousands. */
const MAX_STEPS_PER_TICK = 1_000;

/** Paces market steps at a fixed rate on a timer: how many steps came due since the last tick. */
export class StepPacer {
  private lastTick = performance.now();
  private due = 0;

  constructor(private readonly stepsPerSecond: number) {}

  /** Restarts the clock (when stepping starts or resumes). */
  reset(now = performance.now()): void {
    this.lastTick = now;
    this.due = 0;
  }

  stepsDue(now = performance.now()): number {
    this.due += ((now - this.lastTick) / 1000) * this.stepsPerSecond;
    this.lastTick = now;
    const steps = Math.min(Math.floor(this.due), MAX_STEPS_PER_TICK);
    this.due = Math.min(this.due - steps, 1);
    return steps;
  }
}

/** One market per product, seeded from one seed (undefined: random), as both the simulator and `publish` run them. */
export function createMarkets(
  products: readonly ProductSpec[],
  eventsPerSecond: number,
  seed: number | undefined,
): MarketModel[] {
  const base = seed ?? Math.floor(Math.random() * 0xffff_ffff);
  return products.map(
    (spec, i) => new MarketModel(spec, new Random(base + i * 0x9e37_79b9), eventsPerSecond),
  );
}
