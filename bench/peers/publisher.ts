/**
 * The open-loop publisher every peer server runs in its own process: Coinbase-shaped `l2update`
 * messages on a fixed schedule, each carrying its scheduled time and a per-topic sequence.
 *
 * The schedule is a grid of ticks (every `tickMs` from the start, the same 10 ms the gateway's
 * simulator wakes on); tick k is due at start + k·tickMs and carries, per topic, the messages that
 * fell due since the previous tick (rate · tickMs / 1000 on average; fractions carry over), every
 * one stamped with the tick's scheduled time. A tick that fires late (a busy server) still carries
 * its scheduled time, and missed ticks are all emitted when the loop comes back, so a stalled server
 * shows up as latency and never as a lower offered rate (no coordinated omission).
 */
import { performance } from 'node:perf_hooks';
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

/** Per topic: a mid price in cents drifting by a tick now and then, and the next sequence. */
interface TopicState {
  readonly id: string;
  midCents: number;
  sequence: number;
}

export type Sink = (topic: string, message: L2Update) => void;

export class OpenLoopPublisher {
  private readonly topics: TopicState[];
  private readonly random: () => number;
  private readonly perTick: number;
  private startedAt = 0;
  private tick = 0;
  private carry = 0;
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private published = 0;
  /** Per tick since the start: its scheduled time, messages per topic, and how late it fired (ms). */
  private readonly tickTimes: number[] = [];
  private readonly tickCounts: number[] = [];
  private readonly tickLateness: number[] = [];

  constructor(
    private readonly options: PublisherOptions,
    private readonly sink: Sink,
  ) {
    this.random = mulberry32(options.seed);
    this.topics = options.topics.map((id, i) => ({ id, midCents: 1_000_000 * (i + 1), sequence: 0 }));
    this.perTick = (options.ratePerTopic * options.tickMs) / 1000;
  }

  start(): void {
    if (this.options.ratePerTopic <= 0) return;
    this.startedAt = epochMs();
    this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** What was scheduled in [fromEpochMs, toEpochMs), from the tick history (asked for after the window). */
  stats(fromEpochMs: number, toEpochMs: number): PublisherStats {
    let perTopic = 0;
    const lateness = newHistogram();
    for (let i = 0; i < this.tickTimes.length; i++) {
      const at = this.tickTimes[i]!;
      if (at < fromEpochMs || at >= toEpochMs) continue;
      perTopic += this.tickCounts[i]!;
      lateness.recordValue(Math.round(this.tickLateness[i]! * 1000));
    }
    return {
      ticks: this.ticks,
      published: this.published,
      scheduledInWindow: Object.fromEntries(this.topics.map((t) => [t.id, perTopic])),
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
    this.carry += this.perTick;
    const count = Math.floor(this.carry);
    this.carry -= count;
    this.tickTimes.push(scheduled);
    this.tickCounts.push(count);
    this.tickLateness.push(Math.max(0, firedAt - scheduled));
    if (count === 0) return;
    const time = isoMicros(scheduled);
    for (const topic of this.topics) {
      for (let i = 0; i < count; i++) this.sink(topic.id, this.next(topic, time));
    }
    this.published += count * this.topics.length;
  }

  /** One change near the mid, as the simulator makes them: a side, a price level and its new size. */
  private next(topic: TopicState, time: string): L2Update {
    const r = this.random();
    if (r < 0.1) topic.midCents += r < 0.05 ? -1 : 1;
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
