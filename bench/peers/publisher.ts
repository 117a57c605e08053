/**
 * The open-loop publisher every peer server runs in its own process: Coinbase-shaped `l2update`
 * messages on a fixed schedule, each carrying its scheduled time and a per-topic sequence.
 *
 * The schedule is a grid of ticks (every `tickMs` from the start, the same 10 ms the gateway's
 * simulator wakes on); tick k is due at start + k·tickMs and carries, per topic, as many messages
 * as the gateway's simulator emits for that product at that tick at the same rate and seed (see
 * SimulatorCounts), every one stamped with the tick's scheduled time. A tick that fires late (a
 * busy server) still carries its scheduled time, and missed ticks are all emitted when the loop
 * comes back, so a stalled server shows up as latency and never as a lower offered rate (no
 * coordinated omission).
 */
import { performance } from 'node:perf_hooks';
import { productFromId } from '../../src/config/products.js';
import { createMarkets, EventCredit, TickPacer } from '../../src/feeds/simulator/pacing.js';
import { encodeHistogram, newHistogram } from '../fanout/hdr.js';

export interface L2Update {
  readonly type: 'l2update';
  readonly product_id: string;
  readonly changes: ReadonlyArray<readonly [side: 'buy' | 'sell', price: string, size: string]>;
  readonly time: string;
  readonly sequence: number;
}

export interface PublisherOptions {
  readonly topics: readonly string[];
  /** Messages per second on each topic; 0 publishes nothing. */
  readonly ratePerTopic: number;
  readonly tickMs: number;
  readonly seed: number;
}

/** What a publisher did during a window of scheduled time (and in total). */
export interface PublisherStats {
  readonly ticks: number;
  readonly published: number;
  /** Per topic: messages whose scheduled time fell in the window. */
  readonly scheduledInWindow: Readonly<Record<string, number>>;
  /** How late the ticks due in the window fired (µs), HDR histogram, compressed base64. */
  readonly lateness: string;
}

/** Wall-clock epoch milliseconds with sub-millisecond precision (the clock clients compare against). */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/** ISO-8601 UTC with microseconds, as Coinbase writes times: 2014-11-07T08:19:27.028459Z. */
export function isoMicros(epochMilliseconds: number): string {
  const micros = Math.floor(epochMilliseconds * 1000);
  const millis = Math.floor(micros / 1000);
  return `${new Date(millis).toISOString().slice(0, 23)}${String(micros - millis * 1000).padStart(3, '0')}Z`;
}

/** A small seeded PRNG (mulberry32): the same seed gives every peer the same stream of changes. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b_79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * Per topic: a fixed mid price in cents and the next sequence. Bids stay below the mid and asks
 * above it, so the changes describe a book that never crosses: the gateway's hub applies them to
 * its L2 book, and would reject (and resynchronise) a crossed one.
 */
interface TopicState {
  readonly id: string;
  readonly midCents: number;
  sequence: number;
}

export type Sink = (topic: string, message: L2Update) => void;

/** How many ticks of the simulator's counts are computed ahead and then replayed in a loop. */
const SCHEDULE_SECONDS = 60;

/**
 * Messages per topic per tick: what the gateway's simulator emits for the same products at the same
 * rate and seed. Its ticks are uneven (a market order that fills several levels is several events
 * in one tick, and the product's next ticks owe them: 0 to about 25 events per tick over 4 products
 * at 100/s each, 4 on average), and a tick's size is what its last message waits for, so offering
 * the peers an even 4 would give them easier latency than the gateway. Computed before the start
 * and replayed, so the peers do not pay the market model's CPU at run time.
 */
export class SimulatorCounts {
  private readonly counts: Uint16Array;
  private readonly topicCount: number;
  readonly ticks: number;

  constructor(topics: readonly string[], ratePerTopic: number, tickMs: number, seed: number) {
    const specs = topics.map((id) => {
      const spec = productFromId(id);
      if (typeof spec === 'string') throw new Error(`publisher topic ${id}: ${spec}`);
      return spec;
    });
    const credit = new EventCredit(createMarkets(specs, ratePerTopic, seed));
    this.topicCount = topics.length;
    // The simulator's own pacing, one tick per wake, on a clock that starts at 0.
    const pacer = new TickPacer(ratePerTopic, tickMs);
    pacer.reset(0);
    this.ticks = Math.max(1, Math.round((SCHEDULE_SECONDS * 1000) / tickMs));
    this.counts = new Uint16Array(this.ticks * this.topicCount);
    for (let tick = 0; tick < this.ticks; tick++) {
      pacer.forEachDue((tick + 1) * tickMs, (steps) => {
        if (steps === 0) return;
        // Any time will do: only the number of events per market is kept.
        credit.spend(steps, '2026-01-01T00:00:00.000000Z', (market) => {
          this.counts[tick * this.topicCount + market]!++;
        });
      });
    }
  }

  /** Messages on topic `topic` at tick `tick` (counted from 1, as the publisher does). */
  at(tick: number, topic: number): number {
    return this.counts[((tick - 1) % this.ticks) * this.topicCount + topic]!;
  }
}

export class OpenLoopPublisher {
  private readonly topics: TopicState[];
  private readonly random: () => number;
  /** Undefined when nothing is published (rate 0). */
  private readonly counts: SimulatorCounts | undefined;
  private startedAt = 0;
  private tick = 0;
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private published = 0;
  /** Per tick since the start (tick i + 1 at index i): its scheduled time and how late it fired (ms). */
  private readonly tickTimes: number[] = [];
  private readonly tickLateness: number[] = [];

  constructor(
    private readonly options: PublisherOptions,
    private readonly sink: Sink,
  ) {
    this.random = mulberry32(options.seed);
    this.topics = options.topics.map((id, i) => ({ id, midCents: 1_000_000 * (i + 1), sequence: 0 }));
    this.counts =
      options.ratePerTopic > 0
        ? new SimulatorCounts(options.topics, options.ratePerTopic, options.tickMs, options.seed)
        : undefined;
  }

  start(): void {
    if (!this.counts) return;
    this.startedAt = epochMs();
    this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** What was scheduled in [fromEpochMs, toEpochMs), from the tick history (asked for after the window). */
  stats(fromEpochMs: number, toEpochMs: number): PublisherStats {
    const perTopic = this.topics.map(() => 0);
    const lateness = newHistogram();
    for (let i = 0; i < this.tickTimes.length; i++) {
      const at = this.tickTimes[i]!;
      if (at < fromEpochMs || at >= toEpochMs) continue;
      for (let t = 0; t < perTopic.length; t++) perTopic[t]! += this.counts!.at(i + 1, t);
      lateness.recordValue(Math.round(this.tickLateness[i]! * 1000));
    }
    return {
      ticks: this.ticks,
      published: this.published,
      scheduledInWindow: Object.fromEntries(this.topics.map((t, i) => [t.id, perTopic[i]!])),
      lateness: encodeHistogram(lateness),
    };
  }

  private schedule(): void {
    const due = this.startedAt + (this.tick + 1) * this.options.tickMs;
    this.timer = setTimeout(() => this.fire(), Math.max(0, due - epochMs()));
  }

  /** Emits every tick that has come due (one, or several after a stall), then schedules the next. */
  private fire(): void {
    const now = epochMs();
    for (;;) {
      const scheduled = this.startedAt + (this.tick + 1) * this.options.tickMs;
      if (scheduled > now) break;
      this.tick++;
      this.emitTick(scheduled, now);
    }
    this.schedule();
  }

  private emitTick(scheduled: number, firedAt: number): void {
    this.ticks++;
    this.tickTimes.push(scheduled);
    this.tickLateness.push(Math.max(0, firedAt - scheduled));
    const time = isoMicros(scheduled);
    for (const [t, topic] of this.topics.entries()) {
      const count = this.counts!.at(this.tick, t);
      for (let i = 0; i < count; i++) this.sink(topic.id, this.next(topic, time));
      this.published += count;
    }
  }

  /** One change within 20 ticks of the mid, as the simulator makes them: a side, a price level and its new size (0: gone). */
  private next(topic: TopicState, time: string): L2Update {
    const buy = this.random() < 0.5;
    const offset = 1 + Math.floor(this.random() * 20);
    const cents = buy ? topic.midCents - offset : topic.midCents + offset;
    const size = this.random() < 0.2 ? 0 : Math.floor(this.random() * 1e8);
    topic.sequence++;
    return {
      type: 'l2update',
      product_id: topic.id,
      changes: [[buy ? 'buy' : 'sell', formatCents(cents), formatSatoshis(size)]],
      time,
      sequence: topic.sequence,
    };
  }
}

const formatCents = (cents: number) => `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
const formatSatoshis = (units: number) =>
  `${Math.floor(units / 1e8)}.${String(units % 1e8).padStart(8, '0')}`;
