import type { ProductSpec } from '../../config/products.js';
import { epochMs, isoMicros, nowMicros } from '../../market/time.js';
import type { FeedSink, FeedSource } from '../types.js';
import type { MarketModel } from './market.js';
import { createMarkets, StepPacer } from './pacing.js';

export interface SimulatorOptions {
  readonly products: readonly ProductSpec[];
  readonly eventsPerSecond: number;
  /** Undefined: a random seed. */
  readonly seed: number | undefined;
  /** How often the simulator wakes to emit the events that have come due. */
  readonly tickMs?: number;
}

/** The built-in feed: one MarketModel per product, stepped at a fixed rate on a timer. */
export class SimulatorSource implements FeedSource {
  readonly name = 'simulator';
  private readonly markets: MarketModel[];
  private readonly tickMs: number;
  private sink: FeedSink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly pacer: StepPacer;

  constructor(options: SimulatorOptions) {
    this.markets = createMarkets(options.products, options.eventsPerSecond, options.seed);
    this.pacer = new StepPacer(options.eventsPerSecond);
    this.tickMs = options.tickMs ?? 10;
  }

  async start(sink: FeedSink): Promise<void> {
    this.sink = sink;
    const time = isoMicros(nowMicros());
    for (const market of this.markets) sink.onEvent(market.snapshot(time), epochMs());
    this.pacer.reset();
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  notLiveReason(): string | undefined {
    return this.timer === undefined ? 'the simulator is stopped' : undefined;
  }

  requestSnapshot(productId: string): void {
    const market = this.markets.find((m) => m.spec.id === productId);
    // Deferred: the hub asks from inside its own event handling.
    setImmediate(() => {
      if (market && this.sink) this.sink.onEvent(market.snapshot(isoMicros(nowMicros())), epochMs());
    });
  }

  private tick(): void {
    const now = performance.now();
    const steps = this.pacer.stepsDue(now);
    if (steps === 0 || !this.sink) return;
    const time = isoMicros(nowMicros());
    const receivedAt = epochMs();
    for (let i = 0; i < steps; i++) {
      for (const market of this.markets) {
        for (const event of market.step(time)) this.sink.onEvent(event, receivedAt);
      }
    }
  }
}
