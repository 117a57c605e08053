import type { ProductSpec } from '../../config/products.js';
import { epochMs, isoMicros, nowMicros } from '../../market/time.js';
import type { FeedSink, FeedSource } from '../types.js';
import { MarketModel } from './market.js';
import { Random } from './random.js';

export interface SimulatorOptions {
  readonly products: readonly ProductSpec[];
  readonly eventsPerSecond: number;
  /** Undefined: a random seed. */
  readonly seed: number | undefined;
  /** How often the simulator wakes to emit the events that have come due. */
  readonly tickMs?: number;
}

/** Bounds the catch-up after a stalled event loop, so a stall does not turn into a burst of thousands. */
const MAX_EVENTS_PER_TICK = 1_000;

/** The built-in feed: one MarketModel per product, stepped at a fixed rate on a timer. */
export class SimulatorSource implements FeedSource {
  readonly name = 'simulator';
  private readonly markets: MarketModel[];
  private readonly tickMs: number;
  private sink: FeedSink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  private due = 0;

  constructor(private readonly options: SimulatorOptions) {
    const seed = options.seed ?? Math.floor(Math.random() * 0xffff_ffff);
    this.markets = options.products.map(
      (spec, i) => new MarketModel(spec, new Random(seed + i * 0x9e37_79b9), options.eventsPerSecond),
    );
    this.tickMs = options.tickMs ?? 10;
  }

  async start(sink: FeedSink): Promise<void> {
    this.sink = sink;
    const time = isoMicros(nowMicros());
    for (const market of this.markets) sink.onEvent(market.snapshot(time), epochMs());
    this.lastTick = performance.now();
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
    this.due += ((now - this.lastTick) / 1000) * this.options.eventsPerSecond;
    this.lastTick = now;
    const steps = Math.min(Math.floor(this.due), MAX_EVENTS_PER_TICK);
    this.due = Math.min(this.due - steps, 1);
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
