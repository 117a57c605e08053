import { Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/config.js';

/**
 * The one place an ioredis client is built from the configuration (REDIS_URL, REDIS_PASSWORD and,
 * with Sentinel, REDIS_SENTINELS / REDIS_SENTINEL_MASTER / REDIS_SENTINEL_PASSWORD), for the feed
 * source, the limits store and `publish`. Every connection shares the retry policy and the
 * failover handling below; a role only says how its commands behave around a disconnect.
 */

/** ioredis's options without replyMapping, whose optional type its constructor does not accept as is. */
export type ClientOptions = Omit<RedisOptions, 'replyMapping'>;

/** What differs between the gateway's connections. */
export interface ClientRole {
  /** CLIENT SETNAME, so `CLIENT LIST` on the server tells the connections apart. */
  readonly name: string;
  /** Times a command cut off by a disconnect is retried after reconnecting (0: it fails at once). */
  readonly maxRetriesPerRequest: number;
  /** false: commands in flight at a disconnect fail instead of being sent again after it. */
  readonly resendUnfulfilled?: boolean;
  readonly connectTimeoutMs?: number;
  /** A command without a reply this long fails (no timeout when unset). */
  readonly commandTimeoutMs?: number;
  /** true: the caller calls connect(). */
  readonly lazyConnect?: boolean;
}

const FIRST_RECONNECT_MS = 50;
/** Kept low because a failover makes every connection wait for its next attempt after the promotion. */
const RECONNECT_CAP_MS = 1_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** A Sentinel that does not answer this fast is skipped for the next one. */
const SENTINEL_COMMAND_TIMEOUT_MS = 1_000;

/**
 * Delay before reconnection attempt `attempt` (1, 2, …): 50 ms doubling to 1 s. Used for the data
 * connection and for a round over every Sentinel that found none reachable.
 */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(RECONNECT_CAP_MS, FIRST_RECONNECT_MS * 2 ** Math.min(Math.max(attempt, 1) - 1, 10));
}

/**
 * A primary demoted to a replica (a failover its clients did not see as a disconnect) answers
 * writes with READONLY: reconnect, which asks the Sentinels (or DNS) for the primary again. The
 * command itself fails (1, not 2: no resend); every caller already treats a failed write as lost.
 */
export function reconnectOnReadonly(error: Error): 1 | false {
  return error.message.startsWith('READONLY') ? 1 : false;
}

/** The ioredis options for `role` (exported for tests; createRedisClient is what the gateway uses). */
export function redisClientOptions(config: RedisConfig, role: ClientRole): ClientOptions {
  // REDIS_URL was validated at startup (config.ts): it parses, with a host and an integer database.
  const url = new URL(config.url);
  const tls = url.protocol.toLowerCase() === 'rediss:';
  const urlPassword = url.password === '' ? undefined : decodeURIComponent(url.password);
  const password = config.password ?? urlPassword;
  const database = url.pathname.replace(/^\//, '');
  const common: ClientOptions = {
    // RESP2 reply shapes (ioredis 6 defaults to RESP3).
    protocol: 2,
    connectionName: role.name,
    ...(url.username !== '' && { username: decodeURIComponent(url.username) }),
    ...(password !== undefined && { password }),
    db: database === '' ? 0 : Number(database),
    // A command while Redis is down fails at once instead of queueing: no unbounded offline queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: role.maxRetriesPerRequest,
    autoResendUnfulfilledCommands: role.resendUnfulfilled ?? true,
    connectTimeout: role.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ...(role.commandTimeoutMs !== undefined && { commandTimeout: role.commandTimeoutMs }),
    lazyConnect: role.lazyConnect ?? false,
    retryStrategy: reconnectDelayMs,
    reconnectOnError: reconnectOnReadonly,
  };
  const sentinel = config.sentinel;
  if (!sentinel) {
    return {
      ...common,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? 6379 : Number(url.port),
      ...(tls && { tls: {} }),
    };
  }
  return {
    ...common,
    name: sentinel.masterName,
    role: 'master',
    sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
    ...(sentinel.password !== undefined && { sentinelPassword: sentinel.password }),
    sentinelRetryStrategy: reconnectDelayMs,
    sentinelCommandTimeout: SENTINEL_COMMAND_TIMEOUT_MS,
    // Only the configured Sentinels: one learnt from another's gossip may not be reachable from here.
    updateSentinels: false,
    // Subscribes to +switch-master: a connection to a primary that was demoted but is still up
    // (a manual failover, a partition) moves at once instead of reading a stream nobody writes.
    failoverDetector: true,
    ...(tls && { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} }),
  };
}

/** A client for `role`; the caller listens for 'error' (ioredis reconnects by itself) and disconnects it. */
export function createRedisClient(config: RedisConfig, role: ClientRole): Redis {
  return new Redis(redisClientOptions(config, role));
}
