import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import type { RedisConfig } from '../config/config.js';
import { type ClientRole, createRedisClient } from '../redis/client.js';
import { burstyWindows, consume, type Rate, type RateDecision } from './rate-limits.js';

/**
 * LIMITS_STORE=redis: connection limits that hold across every gateway replica sharing one Redis.
 *
 * Connect rate: rate-limiter-flexible's RateLimiterRedis (sustained + burst, as burstyLimiter() in
 * rate-limits.ts), each insured by a RateLimiterMemory with the same points, so while Redis is down
 * the replica applies the same limits locally. A Redis error is never "over the limit".
 *
 * Concurrent connections per IP: hash `mb:conn:{<ip>}` with one field per replica incarnation
 * holding that incarnation's count, plus a liveness key `mb:replica:<incarnation>` (SET PX
 * replicaTtlMs, refreshed every heartbeatMs). acquire runs one Lua script that sums the fields whose
 * liveness key exists, HDELs the others, and increments its own field only below the limit; so the
 * counts of a replica that dies (kill -9, lost node) stop counting replicaTtlMs later and are reaped.
 *
 * An incarnation is `<replicaId>@<random>`: a restarted replica with the same id never inherits its
 * previous life's counts.
 *
 * Outages and lost updates: this replica keeps an in-memory Map ip -> count of its own live
 * connections (every acquire that answered 'ok', including in fallback; bounded by its connections).
 * After any failed command (Redis down, a release that could not be sent, a reply lost mid-flight)
 * or when a heartbeat finds its liveness key gone (a stall longer than the TTL let other replicas
 * reap its fields), the replica re-bases instead of replaying: in one MULTI it starts a new
 * incarnation, writes the absolute count of every IP from the Map under it, and deletes the old
 * incarnation's liveness key. Every field of the old incarnation, including ones for IPs that have
 * since gone to zero, is then dead and reaped by the next acquire on that IP. No queue of unsent
 * releases, nothing unbounded, and the counts converge to the truth at the first heartbeat (or
 * 'ready' event) after Redis is back.
 *
 * Keys are for a standalone Redis (or a primary with replicas, Sentinel-managed or not): the script
 * reads liveness keys it is not given in KEYS, which Redis Cluster does not allow. After a failover
 * the promoted replica may lack the last counts written: every closed connection (a failover
 * ends them all, or READONLY makes ioredis end it) makes the replica re-base when it reconnects,
 * which writes them again.
 */

export interface ClusterLimitsOptions {
  /** An ioredis client the caller owns (connects, listens for 'error', quits), as LIMITS_CLIENT_ROLE describes. */
  readonly redis: Redis;
  readonly replicaId: string;
  readonly maxConnectionsPerIp: number;
  readonly connectRate: Rate;
  /** How often the liveness key is refreshed (default 5000). */
  readonly heartbeatMs?: number;
  /** Lifetime of the liveness key: a replica silent this long stops counting (default 15000). */
  readonly replicaTtlMs?: number;
}

export interface ClusterLimitsObserver {
  /** true: Redis is unreachable, only this process's own limits apply; false: shared limits again. */
  fallbackChanged(usingLocal: boolean): void;
}

export type ClusterAcquireResult = 'ok' | 'per_ip_limit';

/** Idle per-IP hashes expire after this long; any acquire on the IP, and every re-base, renews it. */
const CONN_HASH_TTL_MS = 24 * 60 * 60 * 1000;
/** At most this many retired incarnations wait for their liveness key to be deleted (they expire anyway). */
const MAX_RETIRED = 64;

export const connKey = (ip: string): string => `mb:conn:{${ip}}`;
export const replicaKey = (incarnation: string): string => `mb:replica:${incarnation}`;

/**
 * KEYS[1] = mb:conn:{ip}; ARGV = own field, max, hash TTL ms, liveness key prefix.
 * Returns the new count for the IP, or -1 when it is at the limit.
 */
const ACQUIRE_LUA = `
local fields = redis.call('HGETALL', KEYS[1])
local mine = ARGV[1]
local sum = 0
for i = 1, #fields, 2 do
  local field = fields[i]
  local n = tonumber(fields[i + 1]) or 0
  if field == mine or redis.call('EXISTS', ARGV[4] .. field) == 1 then
    if n > 0 then sum = sum + n end
  else
    redis.call('HDEL', KEYS[1], field)
  end
end
if sum >= tonumber(ARGV[2]) then return -1 end
redis.call('HINCRBY', KEYS[1], mine, 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return sum + 1
`;

/** KEYS[1] = mb:conn:{ip}; ARGV[1] = own field. Never leaves a field at zero or below. */
const RELEASE_LUA = `
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
`;

interface ScriptCommands {
  mbConnAcquire(key: string, field: string, max: number, ttlMs: number, prefix: string): Promise<number>;
  mbConnRelease(key: string, field: string): Promise<number>;
}

/**
 * How ClusterLimits's connection behaves (createRedisClient adds the rest): a command while Redis
 * is down or slow fails at once (or after commandTimeout) instead of queueing or being retried, so
 * admission never waits on Redis.
 */
export const LIMITS_CLIENT_ROLE: ClientRole = {
  name: 'matchbook-gateway-limits',
  maxRetriesPerRequest: 0,
  connectTimeoutMs: 1000,
  commandTimeoutMs: 500,
};

/** rate-limiter-flexible's Redis limiters, sustained + burst as burstyLimiter(), each insured in memory. */
function redisBurstyLimiter(redis: Redis, rate: Rate, keyPrefix: string): BurstyRateLimiter {
  const windows = burstyWindows(rate);
  const sustained = { keyPrefix, ...windows.sustained };
  const burst = { keyPrefix: `${keyPrefix}-burst`, ...windows.burst };
  const store = { storeClient: redis, rejectIfRedisNotReady: true };
  return new BurstyRateLimiter(
    new RateLimiterRedis({ ...store, ...sustained, insuranceLimiter: new RateLimiterMemory(sustained) }),
    new RateLimiterRedis({ ...store, ...burst, insuranceLimiter: new RateLimiterMemory(burst) }),
  );
}

const newIncarnation = (replicaId: string): string => `${replicaId}@${randomBytes(6).toString('hex')}`;

export class ClusterLimits {
  private readonly redis: Redis;
  private readonly scripts: ScriptCommands;
  private readonly replicaId: string;
  private readonly maxPerIp: number;
  private readonly heartbeatMs: number;
  private readonly ttlMs: number;
  private readonly connectLimiter: BurstyRateLimiter;
  /** This replica's live connections per IP: the truth its Redis fields are re-based from. */
  private readonly local = new Map<string, number>();
  /** The hash field / liveness key suffix this replica currently counts under. */
  private incarnation: string;
  /** Earlier incarnations whose liveness key may still exist (a re-base that failed midway). */
  private retired: string[] = [];
  private needsRebase = false;
  private rebasing = false;
  private usingLocal = false;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  private stopped = false;
  private readonly onReady = () => void this.heartbeat();
  /**
   * Whatever the connection ends on, the server behind it may have lost this replica's latest
   * counts: a failover to a replica that had not got them, a restart. Re-based at the next
   * heartbeat, which 'ready' starts; cheap (one MULTI) and never wrong.
   */
  private readonly onClose = () => {
    if (!this.stopped) this.needsRebase = true;
  };

  constructor(
    options: ClusterLimitsOptions,
    private readonly observer: ClusterLimitsObserver,
  ) {
    this.redis = options.redis;
    this.replicaId = options.replicaId;
    this.maxPerIp = options.maxConnectionsPerIp;
    this.heartbeatMs = options.heartbeatMs ?? 5000;
    this.ttlMs = options.replicaTtlMs ?? 15_000;
    this.incarnation = newIncarnation(this.replicaId);
    this.connectLimiter = redisBurstyLimiter(this.redis, options.connectRate, 'mb:rl:connect');
    this.redis.defineCommand('mbConnAcquire', { numberOfKeys: 1, lua: ACQUIRE_LUA });
    this.redis.defineCommand('mbConnRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
    this.scripts = this.redis as unknown as ScriptCommands;
  }

  /** Registers this replica as live now and keeps it live every heartbeatMs (and at every reconnect). */
  start(): void {
    if (this.timer) return;
    this.stopped = false;
    this.timer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
    this.timer.unref();
    this.redis.on('ready', this.onReady);
    this.redis.on('close', this.onClose);
    void this.heartbeat();
  }

  /** Stops the heartbeat and, best-effort, removes this replica's liveness key and fields. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.redis.off('ready', this.onReady);
    this.redis.off('close', this.onClose);
    await this.beating;
    if (this.redis.status !== 'ready') return;
    const multi = this.redis.multi();
    for (const ip of this.local.keys()) multi.hdel(connKey(ip), this.incarnation);
    multi.del(replicaKey(this.incarnation), ...this.retired.map(replicaKey));
    await multi.exec().catch(() => undefined);
  }

  /** New connections per client IP per second, shared by every replica. */
  async admitConnect(clientIp: string): Promise<RateDecision> {
    if (this.redis.status !== 'ready') this.failed();
    return consume(this.connectLimiter, clientIp);
  }

  /**
   * Reserves a connection for `clientIp` against the cluster-wide per-IP limit. While Redis is
   * unavailable it answers 'ok' (the caller's per-process table still applies).
   */
  async acquire(clientIp: string): Promise<ClusterAcquireResult> {
    const field = this.incarnation;
    if (this.redis.status !== 'ready') {
      this.failed();
      this.count(clientIp, 1);
      return 'ok';
    }
    let result: number;
    try {
      result = await this.scripts.mbConnAcquire(
        connKey(clientIp),
        field,
        this.maxPerIp,
        CONN_HASH_TTL_MS,
        replicaKey(''),
      );
    } catch {
      // The script may or may not have run: count it here, and the re-base makes Redis agree.
      this.failed();
      this.count(clientIp, 1);
      return 'ok';
    }
    if (result < 0) {
      this.succeeded();
      return 'per_ip_limit';
    }
    this.count(clientIp, 1);
    // A re-base snapshot taken while this script was in flight does not include it.
    if (field !== this.incarnation) this.needsRebase = true;
    else this.succeeded();
    return 'ok';
  }

  /** Gives back a connection acquire() admitted. A release that cannot be sent is made good by the re-base. */
  async release(clientIp: string): Promise<void> {
    if (!this.count(clientIp, -1)) return;
    if (this.stopped) return;
    if (this.redis.status !== 'ready') {
      this.failed();
      return;
    }
    try {
      await this.scripts.mbConnRelease(connKey(clientIp), this.incarnation);
      this.succeeded();
    } catch {
      this.failed();
    }
  }

  /** Whether the last Redis interaction failed and only local limits apply. */
  get fallback(): boolean {
    return this.usingLocal;
  }

  /** Adjusts the local table; false when there was nothing to release. */
  private count(ip: string, delta: 1 | -1): boolean {
    const current = this.local.get(ip) ?? 0;
    if (delta < 0 && current === 0) return false;
    const next = current + delta;
    if (next === 0) this.local.delete(ip);
    else this.local.set(ip, next);
    return true;
  }

  private failed(): void {
    if (this.stopped) return;
    this.needsRebase = true;
    if (this.usingLocal) return;
    this.usingLocal = true;
    this.observer.fallbackChanged(true);
  }

  private succeeded(): void {
    if (!this.usingLocal || this.needsRebase || this.rebasing || this.stopped) return;
    this.usingLocal = false;
    this.observer.fallbackChanged(false);
  }

  private heartbeat(): Promise<void> {
    this.beating ??= this.beat().finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    if (this.redis.status !== 'ready') {
      this.failed();
      return;
    }
    try {
      const previous = await this.redis.set(replicaKey(this.incarnation), '1', 'PX', this.ttlMs, 'GET');
      // Our key had expired (a stall or an outage longer than the TTL): others may have reaped our fields.
      if (previous === null && this.local.size > 0) this.needsRebase = true;
      if (this.needsRebase) await this.rebase();
      this.succeeded();
    } catch {
      this.failed();
    }
  }

  /** Starts a new incarnation holding exactly this replica's live connections (see the module comment). */
  private async rebase(): Promise<void> {
    const previous = this.incarnation;
    const next = newIncarnation(this.replicaId);
    // Switch first: scripts sent from now on run after the MULTI on this connection, under `next`.
    this.incarnation = next;
    this.needsRebase = false;
    const multi = this.redis.multi();
    multi.set(replicaKey(next), '1', 'PX', this.ttlMs);
    for (const [ip, n] of this.local) {
      multi.hset(connKey(ip), next, n);
      multi.pexpire(connKey(ip), CONN_HASH_TTL_MS);
    }
    multi.del(replicaKey(previous), ...this.retired.map(replicaKey));
    this.rebasing = true;
    try {
      const replies = await multi.exec();
      const error = replies?.find(([err]) => err)?.[0];
      if (!replies || error) throw error ?? new Error('MULTI aborted');
      this.retired = [];
    } catch (err) {
      this.retired.push(previous);
      if (this.retired.length > MAX_RETIRED) this.retired.shift();
      this.needsRebase = true;
      throw err;
    } finally {
      this.rebasing = false;
    }
  }
}

/**
 * ClusterLimits on a Redis client of its own (the composition root does not touch ioredis).
 * `close` stops the heartbeat, removes this replica's counts and disconnects.
 */
export function connectClusterLimits(
  config: RedisConfig,
  options: Omit<ClusterLimitsOptions, 'redis'>,
  observer: ClusterLimitsObserver,
): { readonly limits: ClusterLimits; close(): Promise<void> } {
  const redis = createRedisClient(config, LIMITS_CLIENT_ROLE);
  redis.on('error', () => {
    // Reported through the observer's fallback signal; ioredis reconnects by itself.
  });
  const limits = new ClusterLimits({ ...options, redis }, observer);
  limits.start();
  return {
    limits,
    async close() {
      await limits.stop();
      redis.disconnect();
    },
  };
}
