import type { Redis } from 'ioredis';
import type { RedisConfig } from '../../config/config.js';
import { epochMs } from '../../market/time.js';
import { createRedisClient } from '../../redis/client.js';
import type { FeedSink, FeedSource } from '../types.js';
import { compareStreamIds, decodeEvent, decodeSnapshot, EVENT_FIELD, redisKeys } from './contract.js';

export interface RedisSourceOptions {
  readonly redis: RedisConfig;
  readonly productIds: readonly string[];
  /** How long one XREAD blocks; also bounds how soon a requested resync starts. */
  readonly blockMs?: number;
  /** Entries read per stream per XREAD. */
  readonly batch?: number;
}

type StreamReply = Array<[key: string, entries: Array<[id: string, fields: string[]]>]>;

/**
 * The production feed: per product, a snapshot key and an event stream in Redis (docs/ingest.md).
 * One connection reads every product's stream with a blocking XREAD from the last id it applied;
 * another reads snapshots. Sequence checks are the hub's: on a gap it asks for a snapshot and this
 * source resumes that product from the snapshot key. Nothing here runs per client or per publish.
 */
export class RedisFeedSource implements FeedSource {
  readonly name = 'redis';
  readonly wellFormed = false;
  private readonly reader: Redis;
  private readonly commands: Redis;
  /** Per product, the id of the last stream entry applied (read after it). */
  private readonly lastIds = new Map<string, string>();
  /** Per product, the sequence of the last event or snapshot handed to the sink. */
  private readonly lastSequences = new Map<string, number>();
  private readonly needSnapshot: Set<string>;
  private readonly keyToProduct: Map<string, string>;
  private sink: FeedSink | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private live = false;
  private downReason: string | undefined = 'not connected to Redis yet';
  /** Counts the reader's connections; the streams are checked once per connection (resumeAfterReconnect). */
  private connections = 0;
  private checkedConnection = 0;

  constructor(private readonly options: RedisSourceOptions) {
    const role = { maxRetriesPerRequest: 0, lazyConnect: true };
    this.reader = createRedisClient(options.redis, { ...role, name: 'matchbook-gateway-feed' });
    this.commands = createRedisClient(options.redis, { ...role, name: 'matchbook-gateway-snapshots' });
    this.needSnapshot = new Set(options.productIds);
    this.keyToProduct = new Map(options.productIds.map((id) => [redisKeys.events(id), id]));
    for (const client of [this.reader, this.commands]) {
      client.on('error', () => {
        // Connection errors surface through the state events below; ioredis retries by itself.
      });
    }
    this.reader.on('ready', () => {
      this.connections++;
      this.setLive(true, undefined);
    });
    this.reader.on('close', () => this.setLive(false, 'lost the connection to Redis'));
  }

  async start(sink: FeedSink): Promise<void> {
    this.sink = sink;
    this.running = true;
    // Stale until the first connection: the `status` channel and ws_feed_stale say so from the start.
    sink.onLiveChanged(false, this.downReason);
    // Down at startup is fine: the gateway starts, reports not ready, and connects when Redis comes up.
    this.reader.connect().catch(() => undefined);
    this.commands.connect().catch(() => undefined);
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.reader.disconnect();
    this.commands.disconnect();
    await this.loop;
  }

  notLiveReason(): string | undefined {
    return this.live ? undefined : `redis: ${this.downReason ?? 'unavailable'}`;
  }

  requestSnapshot(productId: string): void {
    if (this.lastIds.has(productId) || this.options.productIds.includes(productId))
      this.needSnapshot.add(productId);
  }

  private setLive(live: boolean, reason: string | undefined): void {
    if (this.live === live) return;
    this.live = live;
    this.downReason = reason;
    this.sink?.onLiveChanged(live, reason);
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        if (this.reader.status !== 'ready' || this.commands.status !== 'ready') {
          await this.waitUntilReady();
          continue;
        }
        if (this.checkedConnection !== this.connections) await this.resumeAfterReconnect();
        await this.loadSnapshots();
        await this.readEvents();
      } catch {
        // A failed command while Redis goes away: wait for the reconnect, then carry on.
        if (this.running) await this.waitUntilReady();
      }
    }
  }

  private waitUntilReady(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (!this.running || (this.reader.status === 'ready' && this.commands.status === 'ready')) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(check, 50);
      check();
    });
  }

  /**
   * A stream whose last entry is older than the last one applied lost entries this source saw: a
   * failover to a replica that had not received them yet (asynchronous replication), or a Redis
   * restart. New entries may then get ids below the old position (the new server's clock behind
   * the old one's), which an XREAD after it would not see for as long as the clocks differ. Read
   * atomically with the stream's end, the snapshot key decides where to read on: one above the
   * last sequence delivered was written after the switch, before any new event (docs/ingest.md),
   * so from its stream id; otherwise nothing new was written yet, so from the stream's end. Either
   * way the next events read are the upstream's new ones, whose sequences (above the book's) make
   * the hub resynchronise from the snapshot key as after any gap; nothing delivered is replayed.
   */
  private async resumeAfterReconnect(): Promise<void> {
    const connection = this.connections;
    const products = [...this.lastIds.keys()];
    if (products.length > 0) {
      const transaction = this.commands.multi();
      for (const id of products) {
        transaction.xrevrange(redisKeys.events(id), '+', '-', 'COUNT', 1);
        transaction.get(redisKeys.snapshot(id));
      }
      const replies = await transaction.exec();
      if (!replies) throw new Error('MULTI aborted');
      for (const [i, productId] of products.entries()) {
        const [[tailError, entries] = [null, []], [keyError, json] = [null, null]] = replies.slice(
          2 * i,
          2 * i + 2,
        );
        if (tailError || keyError) throw tailError ?? keyError;
        const tail = (entries as [string, string[]][])[0]?.[0] ?? '0-0';
        if (compareStreamIds(tail, this.lastIds.get(productId)!) >= 0) continue;
        const stored = typeof json === 'string' ? decodeSnapshot(json) : undefined;
        const fresh = stored?.ok && stored.value.event.sequence > (this.lastSequences.get(productId) ?? 0);
        this.lastIds.set(productId, fresh ? stored.value.stream_id : tail);
      }
    }
    this.checkedConnection = connection;
  }

  private async loadSnapshots(): Promise<void> {
    for (const productId of [...this.needSnapshot]) {
      const json = await this.commands.get(redisKeys.snapshot(productId));
      if (json === null) continue; // Not bootstrapped upstream yet: try again next round.
      const decoded = decodeSnapshot(json);
      if (!decoded.ok) {
        this.sink?.onUndecodable(productId, `snapshot: ${decoded.reason}`);
        continue;
      }
      this.needSnapshot.delete(productId);
      this.lastIds.set(productId, decoded.value.stream_id);
      this.lastSequences.set(productId, decoded.value.event.sequence);
      this.sink?.onEvent(decoded.value.event, epochMs());
    }
  }

  private async readEvents(): Promise<void> {
    const products = this.options.productIds.filter(
      (id) => this.lastIds.has(id) && !this.needSnapshot.has(id),
    );
    if (products.length === 0) {
      // Nothing bootstrapped yet: wait a moment for snapshots to appear.
      await new Promise((resolve) => setTimeout(resolve, this.options.blockMs ?? 200));
      return;
    }
    const reply = (await this.reader.xread(
      'COUNT',
      this.options.batch ?? 500,
      'BLOCK',
      this.options.blockMs ?? 200,
      'STREAMS',
      ...products.map((id) => redisKeys.events(id)),
      ...products.map((id) => this.lastIds.get(id)!),
    )) as StreamReply | null;
    if (!reply) return;
    const receivedAt = epochMs();
    for (const [key, entries] of reply) {
      const productId = this.keyToProduct.get(key)!;
      for (const [id, fields] of entries) {
        this.lastIds.set(productId, id);
        // A resync requested while this batch was in flight: the snapshot will supersede the rest.
        if (this.needSnapshot.has(productId)) break;
        const json = fields[fields.indexOf(EVENT_FIELD) + 1];
        const decoded = json === undefined ? undefined : decodeEvent(json);
        if (!decoded?.ok) {
          this.sink?.onUndecodable(productId, `stream entry ${id}: ${decoded?.reason ?? 'no event field'}`);
          continue;
        }
        this.lastSequences.set(productId, decoded.value.sequence);
        this.sink?.onEvent(decoded.value, receivedAt);
      }
    }
  }
}
