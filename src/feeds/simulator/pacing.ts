import type { ProductSpec } from '../../config/products.js';
import type { FeedEvent } from '../types.js';
import { MarketModel } from './market.js';
import { Random } from './random.js';

/** Bounds the catch-up after a stalled event loop, so a stall does not turn into a burst of thousands. */
const MAX_STEPS_PER_WAKE = 1_000;

/**
 * Paces market steps on a grid of ticks: tick k is due `tickMs` after tick k - 1, from the start,
 * and carries the steps that fell due during it (stepsPerSecond · tickMs / 1000 on average,
 * fractions carried over). A tick's events are stamped with its scheduled time, when they happened
 * in the simulated market, not with the time the timer got round to them: a late timer then shows
 * as latency downstream instead of being hidden (as the bench's peers stamp theirs).
 */
export class TickPacer {
  /** performance.now() of tick 0: construction, until reset() when stepping starts. */
  private startedAt = performance.now();
  private ticks = 0;
  private carry = 0;
  private readonly stepsPerTick: number;

  constructor(
    stepsPerSecond: number,
    readonly tickMs: number,
  ) {
    this.stepsPerTick = (stepsPerSecond * tickMs) / 1000;
  }

  /** Restarts the grid at `now` (when stepping starts or resumes). */
  reset(now = performance.now()): void {
    this.startedAt = now;
    this.ticks = 0;
    this.carry = 0;
  }

  /** performance.now() of the latest tick that came due (tick 0, the start, before any). */
  get lastTickAt(): number {
    return this.startedAt + this.ticks * this.tickMs;
  }

  /**
   * Milliseconds from `now` until the next tick is due (0 if it already is), for setTimeout. Not
   * rounded up: Node's timers fire on whole milliseconds of a clock out of phase with
   * performance.now(), so this wakes about 1.9 times per tick (an early wake-up finds nothing due and
   * re-arms), but rounding up delayed every tick by up to a millisecond: measured +0.65 ms p50
   * latency against raw uWS at the bench's light point, against +/-0.06 ms without.
   */
  untilNextTick(now = performance.now()): number {
    return Math.max(0, this.lastTickAt + this.tickMs - now);
  }

  /**
   * Calls `tick` for every tick that has come due by `now`, oldest first, with its steps (possibly
   * 0) and its scheduled performance.now(). After a stall, ticks older than MAX_STEPS_PER_WAKE
   * steps' worth are skipped.
   */
  forEachDue(now: number, tick: (steps: number, scheduledAt: number) => void): void {
    let due = Math.floor((now - this.startedAt) / this.tickMs) - this.ticks;
    const maxTicks = this.stepsPerTick > 0 ? Math.ceil(MAX_STEPS_PER_WAKE / this.stepsPerTick) : due;
    if (due > maxTicks) {
      this.ticks += due - maxTicks;
      this.carry = 0;
      due = maxTicks;
    }
    for (; due > 0; due--) {
      this.ticks++;
      this.carry += this.stepsPerTick;
      const steps = Math.floor(this.carry);
      this.carry -= steps;
      tick(steps, this.lastTickAt);
    }
  }
}

/**
 * Steps each market until it has produced its share of events. A step is one order, and a market
 * order that fills several levels produces one event per fill (about 1.18 events per step on
 * average), so counting steps would overshoot SIM_EVENTS_PER_SEC by that much; what one tick
 * overshoots, the next one owes.
 */
export class EventCredit {
  private readonly credits: number[];

  constructor(private readonly markets: readonly MarketModel[]) {
    this.credits = markets.map(() => 0);
  }

  /** Adds `events` to every market's credit, then steps each market until its credit is spent. */
  spend(events: number, time: string, emit: (market: number, event: FeedEvent) => void): void {
    for (const [m, market] of this.markets.entries()) {
      let credit = this.credits[m]! + events;
      while (credit > 0) {
        const produced = market.step(time);
        credit -= Math.max(1, produced.length);
        for (const event of produced) emit(m, event);
      }
      this.credits[m] = credit;
    }
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
