import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { describeRedisTarget, type RedisConfig } from '../../config/config.js';
import type { ProductSpec } from '../../config/products.js';
import { epochMicrosAt, isoMicros } from '../../market/time.js';
import { createRedisClient } from '../../redis/client.js';
import { newEpoch } from '../epoch.js';
import type { MarketModel } from '../simulator/market.js';
import { createMarkets, EventCredit, TickPacer } from '../simulator/pacing.js';
import type { FeedEvent, SnapshotEvent } from '../types.js';
import { decodeEvent, decodeSnapshot, EVENT_FIELD, redisKeys } from './contract.js';

export interface PublisherOptions {
  readonly redis: RedisConfig;
  readonly products: readonly ProductSpec[];
  /** Market actions per second per product (a market order can produce several events). */
  readonly eventsPerSecond: number;
  /** Undefined: a random seed. */
  readonly seed: number | undefined;
  /** Approximate length each product's stream is trimmed to (`XADD … MAXLEN ~`). */
  readonly maxLen: number;
  readonly snapshotIntervalMs: number;
}

export interface Publisher {
  /** This run's upstream incarnation, stamped on everything it writes (docs/ingest.md). */
  readonly epoch: string;
  stop(): Promise<void>;
  /** For tests: events Redis acknowledged. */
  published(): number;
  /** For tests: events stepped but not (known to be) written, Redis being down or too slow. */
  failed(): number;
  /** For tests: the markets' current books, in the order of `products`. */
  books(): SnapshotEvent[];
}

const TICK_MS = 10;
/** Pipelines awaiting Redis's replies; beyond this a tick's events are dropped, not queued. */
const MAX_PIPELINES_IN_FLIGHT = 16;
const FAILURE_LOG_INTERVAL_MS = 5_000;
/** After a failed snapshot write, how soon the next tick tries again. */
const SNAPSHOT_RETRY_MS = 250;
const STOP_TIMEOUT_MS = 2_000;

/**
 * Writes the snapshot key for the book as of everything queued before it on this connection. The
 * stream id it records is read inside Redis, atomically: it is the id of the last XADD of this
 * product that Redis executed (that tick's last one, when it succeeded), or 0-0 for an empty or
 * missing stream, as after a Redis restart. Events Redis never got are covered by the book; events
 * it got are all before this point, so a reader replaying the stream after stream_id onto the book
 * sees exactly the events that follow it. Both keys share the product's hash slot.
 *
 * A key already holding a newer incarnation's snapshot (ARGV[2] is this writer's epoch) is left
 * alone and {'superseded', epoch} returned: with two publishers on one product the key only ever
 * moves to newer incarnations, so a reader bootstrapping from it follows the same one as the
 * readers that saw the switch in the stream. Epochs are equal-length digit strings, so Lua's
 * string order is their numeric order.
 */
const WRITE_SNAPSHOT = `
local current = redis.call('GET', KEYS[2])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and type(stored.event) == 'table' then
    local epoch = stored.event.epoch
    if type(epoch) == 'string' and string.len(epoch) == string.len(ARGV[2]) and epoch > ARGV[2] then
      return {'superseded', epoch}
    end
  end
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local id = last and last[1] or '0-0'
redis.call('SET', KEYS[2], '{"stream_id":"' .. id .. '","event":' .. ARGV[1] .. '}')
return id`;

/** A sequence in microseconds of wall-clock time: above what any earlier run can have reached. */
const sequenceFloor = (nowMs: number) => nowMs * 1_000;

/**
 * The upstream publisher (`matchbook-gateway publish`): the simulator's markets, written to Redis as
 * docs/ingest.md specifies. Each tick's events go out in one pipeline; snapshots ride in the same
 * pipeline right after that tick's XADDs. While Redis is unreachable the markets keep moving and
 * their events are counted as failed, never buffered; on every (re)connection fresh snapshots are
 * written first, and readers resynchronise from them.
 *
 * Every run is a new upstream incarnation: it stamps an epoch on everything it writes, starts its
 * sequences above everything in Redis and above a wall-clock floor, and announces itself with a
 * snapshot in the stream as well as in the key, so every reader switches books at the same entry.
 */
export async function startPublisher(options: PublisherOptions, logger: Logger): Promise<Publisher> {
  const publisher = new RedisPublisher(options, logger);
  await publisher.started;
  return publisher;
}

interface PendingWrite {
  /** Settles the write as failed when its connection closes (ioredis does not resend it). */
  abandon(): void;
}

class RedisPublisher implements Publisher {
  /** Resolves once the first snapshots are written, or Redis has been found unreachable. */
  readonly started: Promise<void>;
  readonly epoch = newEpoch(Date.now(), Math.random);
  private readonly client: Redis;
  private readonly markets: MarketModel[];
  private readonly credit: EventCredit;
  private readonly pending = new Set<PendingWrite>();
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly pacer: TickPacer;
  /** performance.now() at which the next tick writes snapshots. */
  private nextSnapshotAt = Number.POSITIVE_INFINITY;
  private publishedEvents = 0;
  private failedEvents = 0;
  private failedSinceLog = 0;
  private lastFailureLog = Number.NEGATIVE_INFINITY;
  private stopped = false;
  /** The markets continue above the sequences found in Redis (claimSequences). */
  private claimed = false;
  private claiming = false;
  /** Until a write lands with this incarnation's snapshots in the streams, writes carry them. */
  private announced = false;
  /** Set when a newer incarnation owns the snapshot keys: this one writes nothing more. */
  private supersededBy: string | undefined;
  private markStarted: () => void = () => undefined;

  constructor(
    private readonly options: PublisherOptions,
    private readonly logger: Logger,
  ) {
    this.markets = createMarkets(options.products, options.eventsPerSecond, options.seed);
    this.credit = new EventCredit(this.markets);
    this.pacer = new TickPacer(options.eventsPerSecond, TICK_MS);
    this.started = new Promise((resolve) => {
      this.markStarted = resolve;
    });
    // Trades can add several events per action; snapshots must come more often than MAXLEN entries.
    const entriesPerSnapshot = (options.eventsPerSecond * options.snapshotIntervalMs) / 1000;
    if (entriesPerSnapshot * 1.5 >= options.maxLen) {
      logger.warn(
        { maxLen: options.maxLen, entriesPerSnapshot },
        'streams may be trimmed past the snapshot: readers will resync often; raise the max length',
      );
    }
    this.client = createRedisClient(options.redis, {
      name: 'matchbook-publisher',
      maxRetriesPerRequest: 1,
      // Writes cut off by a disconnect are failed (see 'close'), never replayed after the snapshot.
      resendUnfulfilled: false,
    });
    this.client.on('error', (error: Error) => {
      this.failure(0, error.message);
      this.markStarted();
    });
    this.client.on('close', () => {
      for (const write of [...this.pending]) write.abandon();
    });
    this.client.on('ready', () => this.onReady());
    logger.info(
      {
        products: options.products.map((p) => p.id),
        seed: options.seed,
        eventsPerSecond: options.eventsPerSecond,
        epoch: this.epoch,
      },
      'publisher starting',
    );
  }

  published(): number {
    return this.publishedEvents;
  }

  failed(): number {
    return this.failedEvents;
  }

  books(): SnapshotEvent[] {
    const time = this.bookTime();
    return this.markets.map((market) => market.snapshot(time));
  }

  /** The books are as of the latest tick: a snapshot carries its time, never later than the next event's. */
  private bookTime(): string {
    return isoMicros(epochMicrosAt(this.pacer.lastTickAt));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    // Let the last pipelines land (a connection that drops meanwhile fails them through 'close'),
    // but do not wait on a Redis that stopped answering.
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise((resolve) => {
        timeout = setTimeout(resolve, STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timeout);
    if (this.client.status === 'ready') await this.client.quit().catch(() => this.client.disconnect());
    else this.client.disconnect();
    this.markStarted();
  }

  private onReady(): void {
    if (this.stopped || this.supersededBy !== undefined) return;
    if (!this.claimed) {
      void this.claimSequences();
      return;
    }
    this.logger.info(
      { redis: describeRedisTarget(this.options.redis) },
      'connected to redis, writing snapshots',
    );
    // Before any new event: readers that saw a gap resync from these.
    this.write(
      this.markets.map(() => []),
      true,
    );
    if (this.timer === undefined) {
      // The markets start moving once there is somewhere to write them.
      this.pacer.reset();
      this.schedule();
    }
  }

  /**
   * Starts each market above the last sequence its product's stream (or snapshot key) holds, and
   * above sequenceFloor(now) for when Redis lost them: sequences never go backwards for a reader
   * that saw an earlier incarnation. The first snapshot takes the next sequence of its own.
   */
  private async claimSequences(): Promise<void> {
    if (this.claiming) return;
    this.claiming = true;
    try {
      const floor = sequenceFloor(Date.now());
      const bases: number[] = [];
      for (const market of this.markets) {
        const id = market.spec.id;
        const [last] = await this.client.xrevrange(redisKeys.events(id), '+', '-', 'COUNT', 1);
        const stored = await this.client.get(redisKeys.snapshot(id));
        const json = last?.[1][last[1].indexOf(EVENT_FIELD) + 1];
        const lastEvent = json === undefined ? undefined : decodeEvent(json);
        const snapshot = stored === null ? undefined : decodeSnapshot(stored);
        // A sequence readers refuse (not a safe integer) was never served: it sets no floor.
        const served = (sequence: number | undefined) =>
          sequence !== undefined && Number.isSafeInteger(sequence) ? sequence : 0;
        bases.push(
          Math.max(
            floor,
            served(lastEvent?.ok ? lastEvent.value.sequence : undefined),
            served(snapshot?.ok ? snapshot.value.event.sequence : undefined),
          ),
        );
      }
      for (const [m, market] of this.markets.entries()) market.continueFrom(bases[m]! + 1);
      this.claimed = true;
      this.logger.info(
        {
          epoch: this.epoch,
          sequences: Object.fromEntries(this.markets.map((m, i) => [m.spec.id, bases[i]! + 1])),
        },
        'new upstream incarnation: sequences continue above everything in redis',
      );
    } catch (error) {
      this.failure(0, `reading the last sequences: ${(error as Error).message}`);
    } finally {
      this.claiming = false;
    }
    if (this.claimed && this.client.status === 'ready') this.onReady();
  }

  private schedule(): void {
    this.timer = setTimeout(() => this.wake(), this.pacer.untilNextTick());
  }

  /** As SimulatorSource wakes: every tick that came due, stamped with its scheduled time, in one write. */
  private wake(): void {
    const now = performance.now();
    const events = this.markets.map(() => [] as FeedEvent[]);
    let stepped = 0;
    this.pacer.forEachDue(now, (steps, scheduledAt) => {
      if (steps === 0) return;
      const time = isoMicros(epochMicrosAt(scheduledAt));
      this.credit.spend(steps, time, (m, event) => events[m]!.push(event));
      stepped += steps;
    });
    const withSnapshots = now >= this.nextSnapshotAt;
    if (stepped > 0 || withSnapshots) this.write(events, withSnapshots);
    if (!this.stopped && this.supersededBy === undefined) this.schedule();
  }

  /**
   * One pipeline: each product's events (XADD), then, if asked, each product's snapshot as of those
   * events. Dropped when Redis is not writable or too far behind: the next snapshot covers the gap.
   */
  private write(events: readonly (readonly FeedEvent[])[], withSnapshots: boolean): void {
    const count = events.reduce((n, e) => n + e.length, 0);
    if (this.client.status !== 'ready' || this.inFlight.size >= MAX_PIPELINES_IN_FLIGHT) {
      const reason =
        this.client.status === 'ready' ? 'redis is not keeping up' : `redis ${this.client.status}`;
      // The stream now has a gap: a fresh snapshot goes with the next write that can be made.
      this.nextSnapshotAt = Number.NEGATIVE_INFINITY;
      this.failure(count, reason);
      return;
    }
    const pipeline = this.client.pipeline();
    const maxLen = String(this.options.maxLen);
    for (const [m, market] of this.markets.entries()) {
      const key = redisKeys.events(market.spec.id);
      for (const event of events[m]!) {
        pipeline.xadd(key, 'MAXLEN', '~', maxLen, '*', EVENT_FIELD, this.stamped(event));
      }
    }
    const announce = withSnapshots && !this.announced;
    if (withSnapshots) {
      const time = this.bookTime();
      for (const market of this.markets) {
        const id = market.spec.id;
        const snapshot = this.stamped(market.snapshot(time));
        // Before the key's script, so the key's stream_id covers the announcement.
        if (announce) pipeline.xadd(redisKeys.events(id), 'MAXLEN', '~', maxLen, '*', EVENT_FIELD, snapshot);
        pipeline.eval(WRITE_SNAPSHOT, 2, redisKeys.events(id), redisKeys.snapshot(id), snapshot, this.epoch);
      }
      this.nextSnapshotAt = performance.now() + this.options.snapshotIntervalMs;
    }

    let settled = false;
    const settle = (results: [Error | null, unknown][] | null, error?: Error): void => {
      if (settled) return;
      settled = true;
      this.pending.delete(write);
      let failedEvents = 0;
      let firstError = error?.message;
      let snapshotsFailed = withSnapshots && results === null;
      for (const [i, [err, reply]] of (results ?? []).entries()) {
        if (Array.isArray(reply) && reply[0] === 'superseded') this.supersede(String(reply[1]));
        if (!err) continue;
        firstError ??= err.message;
        if (i < count) failedEvents++;
        else snapshotsFailed = true;
      }
      if (results === null) failedEvents = count;
      this.publishedEvents += count - failedEvents;
      if (announce && !snapshotsFailed) this.announced = true;
      if (failedEvents > 0 || snapshotsFailed) {
        this.nextSnapshotAt = Math.min(this.nextSnapshotAt, performance.now() + SNAPSHOT_RETRY_MS);
        this.failure(failedEvents, firstError ?? 'write failed');
      }
      if (withSnapshots) this.markStarted();
    };
    const write: PendingWrite = {
      abandon: () => settle(null, new Error('connection closed before redis replied')),
    };
    this.pending.add(write);
    const done = pipeline.exec().then(
      (results) => settle(results ?? null, results ? undefined : new Error('pipeline not executed')),
      (error: Error) => settle(null, error),
    );
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  /** The event as JSON with this incarnation's epoch first: one string concatenation per event. */
  private stamped(event: FeedEvent): string {
    return `{"epoch":"${this.epoch}",${JSON.stringify(event).slice(1)}`;
  }

  /**
   * A newer incarnation writes the same products (a second publisher was started): readers follow
   * it and drop this one's entries, so this one stops writing rather than fill the streams.
   */
  private supersede(epoch: string): void {
    if (this.supersededBy !== undefined) return;
    this.supersededBy = epoch;
    clearTimeout(this.timer);
    this.logger.error(
      { epoch: this.epoch, supersededBy: epoch },
      'a newer publisher writes these products: this one stopped writing (stop it, or stop the other)',
    );
  }

  /** Counts events that were not written and logs, at most once per FAILURE_LOG_INTERVAL_MS. */
  private failure(events: number, reason: string): void {
    this.failedEvents += events;
    this.failedSinceLog += events;
    const now = performance.now();
    if (now - this.lastFailureLog < FAILURE_LOG_INTERVAL_MS || this.stopped) return;
    this.logger.warn(
      { failedEvents: this.failedSinceLog, totalFailedEvents: this.failedEvents, reason },
      'redis writes failing; the markets keep moving and snapshots are rewritten on reconnection',
    );
    this.lastFailureLog = now;
    this.failedSinceLog = 0;
  }
}
