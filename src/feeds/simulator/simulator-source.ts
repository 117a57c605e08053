import type { ProductSpec } from '../../config/products.js';
import { epochMicrosAt, epochMs, isoMicros } from '../../market/time.js';
import type { FeedSink, FeedSource } from '../types.js';
import type { MarketModel } from './market.js';
import { createMarkets, EventCredit, TickPacer } from './pacing.js';

export interface SimulatorOptions {
  readonly products: readonly ProductSpec[];
  readonly eventsPerSecond: number;
  /** Undefined: a random seed. */
  readonly seed: number | undefined;
  /** How often the simulator wakes to emit the events that have come due. */
  readonly tickMs?: number;
}

/** The built-in feed: one MarketModel per product, stepped at a fixed rate on a grid of ticks. */
export class SimulatorSource implements FeedSource {
  readonly name = 'simulator';
  /** Its prices and sizes come from formatUnits, its times from isoMicros (test/unit/feeds/simulator.test.ts feeds a checking hub). */
  readonly wellFormed = true;
  private readonly markets: MarketModel[];
  private readonly credit: EventCredit;
  private sink: FeedSink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly pacer: TickPacer;

  constructor(options: SimulatorOptions) {
    this.markets = createMarkets(options.products, options.eventsPerSecond, options.seed);
    this.credit = new EventCredit(this.markets);
    this.pacer = new TickPacer(options.eventsPerSecond, options.tickMs ?? 10);
  }

  async start(sink: FeedSink): Promise<void> {
    this.sink = sink;
    this.pacer.reset();
    const time = this.bookTime();
    for (const market of this.markets) sink.onEvent(market.snapshot(time), epochMs());
    this.schedule();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  notLiveReason(): string | undefined {
    return this.timer === undefined ? 'the simulator is stopped' : undefined;
  }

  requestSnapshot(productId: string): void {
    const market = this.markets.find((m) => m.spec.id === productId);
    // Deferred: the hub asks from inside its own event handling.
    setImmediate(() => {
      if (market && this.sink) this.sink.onEvent(market.snapshot(this.bookTime()), epochMs());
    });
  }

  /** The books are as of the latest tick: a snapshot carries its time, never later than the next event's. */
  private bookTime(): string {
    return isoMicros(epochMicrosAt(this.pacer.lastTickAt));
  }

  private schedule(): void {
    this.timer = setTimeout(() => this.wake(), this.pacer.untilNextTick());
  }

  /** Steps every tick that came due, each stamped with its scheduled time, then waits for the next. */
  private wake(): void {
    const sink = this.sink!;
    const receivedAt = epochMs();
    this.pacer.forEachDue(performance.now(), (steps, scheduledAt) => {
      if (steps === 0) return;
      const time = isoMicros(epochMicrosAt(scheduledAt));
      this.credit.spend(steps, time, (_market, event) => sink.onEvent(event, receivedAt));
    });
    // Unless a sink stopped the simulator meanwhile.
    if (this.timer !== undefined) this.schedule();
  }
}
