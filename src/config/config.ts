import { isIPv6 } from 'node:net';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { type Cidr, parseCidrList } from '../limits/client-address.js';
import { type DescriptorBudget, descriptorBudget } from '../limits/descriptor-budget.js';
import { catchUpFit } from './catch-up-fit.js';
import { cpuLimit } from './cpu-limit.js';
import { type ProductSpec, productFromId } from './products.js';

/**
 * Configuration comes only from environment variables. Every variable is declared once below with
 * its default and what it accepts; loadConfig reports every bad variable at once. A unit test
 * checks that the README's table lists every variable with this default.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const FEED_SOURCES = ['simulator', 'redis'] as const;
export const LIMITS_STORES = ['memory', 'redis'] as const;

interface Variable<T> {
  readonly schema: z.ZodType<T, string>;
  readonly defaultValue: string;
  readonly accepts: string;
  readonly description: string;
  /** How a bad value is quoted back, for values that may hold a secret. */
  readonly shown?: (given: string) => string;
}

function variable<T>(
  defaultValue: string,
  accepts: string,
  description: string,
  schema: z.ZodType<T, string>,
  shown?: (given: string) => string,
): Variable<T> {
  return { schema, defaultValue, accepts, description, ...(shown ? { shown } : {}) };
}

/** A URL with any user:password@ replaced, for logs and error messages. */
function redactCredentials(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//[redacted]@');
}

const integerText = z
  .string()
  .regex(/^-?\d+$/, 'not an integer')
  .transform(Number);

function integer(min: number, max: number) {
  return integerText.pipe(z.number().int().min(min).max(max));
}

const productList = z
  .string()
  .transform((raw) =>
    raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  )
  .pipe(
    z
      .array(z.string())
      .min(1)
      .max(100)
      .refine((ids) => new Set(ids).size === ids.length, 'duplicate product id'),
  )
  .transform((ids, ctx) => {
    const specs: ProductSpec[] = [];
    for (const id of ids) {
      const spec = productFromId(id);
      if (typeof spec === 'string') ctx.addIssue({ code: 'custom', message: spec });
      else specs.push(spec);
    }
    return specs;
  });

/** Redis's own bound on a database index (`databases` is a signed int); 0-15 on a default server. */
const MAX_REDIS_DATABASE = 2_147_483_647;

/**
 * The whole Redis URL, checked here rather than by ioredis at connect time, where a bad port throws
 * an "Invalid URL" that names no variable and a bad database becomes `SELECT NaN` after listening.
 */
const redisUrlSchema = z.string().superRefine((text, ctx) => {
  const problem = redisUrlProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

function redisUrlProblem(text: string): string | undefined {
  if (!/^rediss?:\/\//i.test(text)) return 'not a redis:// or rediss:// URL';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // WHATWG URL refuses a port over 65535 without saying so: say it, as that is the likely slip.
    const port = /^rediss?:\/\/(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/]*):(\d+)(?:\/|$)/i.exec(text)?.[1];
    return port !== undefined && Number(port) > 65_535 ? 'port out of range (1-65535)' : 'not a valid URL';
  }
  if (url.hostname === '') return 'no host';
  if (url.port === '0') return 'port out of range (1-65535)';
  if (url.search !== '' || url.hash !== '') return 'query or fragment not accepted';
  const database = url.pathname.replace(/^\//, '');
  if (database !== '' && (!/^(0|[1-9]\d{0,9})$/.test(database) || Number(database) > MAX_REDIS_DATABASE))
    return `database ${JSON.stringify(database.slice(0, 40))} is not an integer from 0 to ${MAX_REDIS_DATABASE}`;
  return undefined;
}

/** How many Sentinels REDIS_SENTINELS may list: ioredis tries them in turn, so a long list only slows a failover. */
const MAX_SENTINELS = 16;

export interface SentinelAddress {
  readonly host: string;
  readonly port: number;
}

/** One `host:port` of REDIS_SENTINELS (IPv6 in brackets), or why it is not one. */
function sentinelAddress(entry: string): SentinelAddress | string {
  const match = /^(\[[^\]]*\]|[^:[\]]+):([^:]*)$/.exec(entry);
  if (!match) return `${JSON.stringify(entry.slice(0, 60))} is not host:port`;
  const [, rawHost = '', rawPort = ''] = match;
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  const validHost = rawHost.startsWith('[')
    ? isIPv6(host)
    : host.length <= 253 &&
      /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host);
  if (!validHost)
    return `${JSON.stringify(entry.slice(0, 60))}: ${JSON.stringify(host.slice(0, 60))} is not a host name or IP address`;
  if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) < 1 || Number(rawPort) > 65_535)
    return `${JSON.stringify(entry.slice(0, 60))}: port ${JSON.stringify(rawPort.slice(0, 10))} is not an integer from 1 to 65535`;
  return { host, port: Number(rawPort) };
}

const sentinelList = z.string().transform((text, ctx) => {
  if (text === '') return [];
  const entries = text.split(',').map((s) => s.trim());
  const addresses: SentinelAddress[] = [];
  for (const entry of entries) {
    const parsed = sentinelAddress(entry);
    if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
    else addresses.push(parsed);
  }
  const keys = addresses.map((a) => `${a.host.toLowerCase()}:${a.port}`);
  if (new Set(keys).size !== keys.length)
    ctx.addIssue({ code: 'custom', message: 'a Sentinel is listed twice' });
  if (entries.length > MAX_SENTINELS)
    ctx.addIssue({ code: 'custom', message: `more than ${MAX_SENTINELS} Sentinels` });
  return addresses;
});

/** The default worker count: the container's CPU limit where there is one (see cpu-limit.ts). */
export const DEFAULT_WORKER_THREADS = cpuLimit('/sys/fs/cgroup', availableParallelism());

export const CONFIG_VARIABLES = {
  HOST: variable(
    '0.0.0.0',
    'an IP address or host name',
    'Address to listen on.',
    z.string().regex(/^[A-Za-z0-9.:_-]{1,253}$/),
  ),
  PORT: variable(
    '8080',
    'an integer from 0 to 65535 (0 picks a free port)',
    'Port for WebSocket, REST, health and metrics.',
    integer(0, 65535),
  ),
  ADMIN_PORT: variable(
    '9091',
    'an integer from 0 to 65535 (0 picks a free port), not the same as a non-zero PORT',
    'Port of the admin listener (/healthz, /readyz, /metrics) for probes and scrapes.',
    integer(0, 65535),
  ),
  LOG_LEVEL: variable('info', `one of ${LOG_LEVELS.join(', ')}`, 'pino log level.', z.enum(LOG_LEVELS)),
  FEED_SOURCE: variable(
    'simulator',
    `one of ${FEED_SOURCES.join(', ')}`,
    'Where market data comes from.',
    z.enum(FEED_SOURCES),
  ),
  REDIS_URL: variable(
    'redis://127.0.0.1:6379',
    `a redis:// or rediss:// (TLS) URL: [user:password@]host[:port 1-65535][/database 0-${MAX_REDIS_DATABASE}], no query or fragment`,
    'Redis for FEED_SOURCE=redis, LIMITS_STORE=redis and `publish`. Credentials in the URL are redacted from logs.',
    redisUrlSchema,
    redactCredentials,
  ),
  REDIS_PASSWORD: variable(
    '',
    'empty or the password (never logged)',
    'Redis password, if not in REDIS_URL.',
    z.string(),
  ),
  REDIS_SENTINELS: variable(
    '',
    `empty (no Sentinel) or 1 to ${MAX_SENTINELS} distinct comma-separated Sentinel addresses host:port (port 1-65535, IPv6 in brackets), with REDIS_SENTINEL_MASTER`,
    "Redis Sentinels that say which server is the primary: set, REDIS_URL's host and port are not used (its user, password, database and TLS are).",
    sentinelList,
  ),
  REDIS_SENTINEL_MASTER: variable(
    '',
    'empty, or the master name the Sentinels monitor (1 to 128 of A-Z a-z 0-9 . _ -), with REDIS_SENTINELS',
    'The master name of `sentinel monitor <name> …` whose primary is used.',
    z.string().regex(/^([A-Za-z0-9._-]{1,128})?$/, 'not 1 to 128 of A-Z a-z 0-9 . _ -'),
  ),
  REDIS_SENTINEL_PASSWORD: variable(
    '',
    "empty (the Sentinels need none) or the Sentinels' password (never logged), with REDIS_SENTINELS",
    "The Sentinels' own password (their requirepass), if they have one.",
    z.string(),
  ),
  LIMITS_STORE: variable(
    'memory',
    `one of ${LIMITS_STORES.join(', ')}`,
    'Where per-IP limits are kept: this process only, or Redis (cluster-wide across replicas, local fallback).',
    z.enum(LIMITS_STORES),
  ),
  PUBLISH_MAXLEN: variable(
    '10000',
    'an integer from 100 to 10000000',
    '`publish`: entries kept per product stream (XADD MAXLEN ~).',
    integer(100, 10_000_000),
  ),
  PUBLISH_SNAPSHOT_MS: variable(
    '1000',
    'an integer from 50 to 60000',
    "`publish`: how often each product's snapshot key is rewritten.",
    integer(50, 60_000),
  ),
  PRODUCTS: variable(
    'BTC-USD,ETH-USD,SOL-USD,ETH-BTC',
    '1 to 100 distinct comma-separated BASE-QUOTE ids of known currencies',
    'Products served.',
    productList,
  ),
  SIM_EVENTS_PER_SEC: variable(
    '20',
    'a number from 0.1 to 10000',
    'Simulator: upstream events per second per product.',
    z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'not a number')
      .transform(Number)
      .pipe(z.number().min(0.1).max(10_000)),
  ),
  SIM_SEED: variable(
    '',
    'empty (random) or an integer from 0 to 4294967295',
    'Simulator: seed that makes the event stream reproducible.',
    z.union([z.literal('').transform(() => undefined), integer(0, 0xffff_ffff)]),
  ),
  SUBSCRIBE_TIMEOUT_MS: variable(
    '5000',
    'an integer from 100 to 600000',
    'A connection with no subscription after this long is closed (4001).',
    integer(100, 600_000),
  ),
  STATUS_INTERVAL_MS: variable(
    '10000',
    'an integer from 1000 to 3600000',
    'Interval of `status` channel messages.',
    integer(1_000, 3_600_000),
  ),
  SHUTDOWN_TIMEOUT_MS: variable(
    '10000',
    'an integer from 100 to 300000',
    'Deadline for a graceful drain after SIGTERM/SIGINT; past it the process exits 1.',
    integer(100, 300_000),
  ),
  DRAIN_SPREAD_MS: variable(
    '0',
    'an integer from 0 to 300000',
    'On shutdown, spread the 1001 closes evenly over this window (keep it below SHUTDOWN_TIMEOUT_MS).',
    integer(0, 300_000),
  ),
  WS_WORKER_THREADS: variable(
    String(DEFAULT_WORKER_THREADS.cpus),
    'an integer from 0 to 64 (0: serve on the main thread)',
    'uWS worker threads sharing PORT; default: the number of CPUs the container may use (its cgroup CPU limit).',
    integer(0, 64),
  ),
  WS_WORKER_STALL_MS: variable(
    '5000',
    'an integer from 500 to 120000',
    'A worker whose event loop is stuck this long is replaced (/healthz fails meanwhile).',
    integer(500, 120_000),
  ),
  WS_THROTTLE_MS: variable(
    '0',
    'an integer from 0 to 60000',
    "Minimum interval between a product's level2 and ticker updates; changes in between are merged (0: every update).",
    integer(0, 60_000),
  ),
  WS_BACKPRESSURE_HIGH_BYTES: variable(
    '262144',
    'an integer from 16384 to 67108864',
    'A connection with more than this buffered is switched to conflated delivery; below a quarter of it, it catches up in pieces.',
    integer(16_384, 67_108_864),
  ),
  WS_MAX_BACKPRESSURE_BYTES: variable(
    '4194304',
    'an integer from 65536 to 268435456, at least twice WS_BACKPRESSURE_HIGH_BYTES and room for one catch-up piece and ErrSlowConsume (README: Flow control)',
    'Hard per-connection buffer limit (uWS maxBackpressure); a connection over it is closed, never silently skipped.',
    integer(65_536, 268_435_456),
  ),
  WS_SLOW_QUEUE_MAX_MESSAGES: variable(
    '1000',
    'an integer from 10 to 1000000',
    'Messages a slow connection may have queued (matches, heartbeats, status) before it is disconnected.',
    integer(10, 1_000_000),
  ),
  WS_SLOW_CONSUMER_TIMEOUT_MS: variable(
    '10000',
    'an integer from 100 to 600000',
    'A connection over the high-water mark, or catching up, for this long is disconnected with ErrSlowConsume (4002).',
    integer(100, 600_000),
  ),
  WS_BACKPRESSURE_CHECK_MS: variable(
    '20',
    'an integer from 5 to 1000',
    "How often each thread checks its connections' buffered bytes.",
    integer(5, 1_000),
  ),
  WS_MAX_CONNECTIONS: variable(
    '20000',
    'an integer from 1 to 1000000 that fits the open-files limit (README: Operations)',
    'Connections the whole process accepts; past it upgrades get 503 with Retry-After. Unset, lowered to what the open-files limit fits.',
    integer(1, 1_000_000),
  ),
  WS_MAX_CONNECTIONS_PER_IP: variable(
    '50',
    'an integer from 1 to 1000000',
    'Concurrent connections per client IP (exact across worker threads); past it 429 with Retry-After.',
    integer(1, 1_000_000),
  ),
  WS_CONNECT_RATE_PER_IP: variable(
    '8',
    'an integer from 1 to 100000',
    'New connections per client IP per second (sustained); past it 429 with Retry-After.',
    integer(1, 100_000),
  ),
  WS_CONNECT_BURST_PER_IP: variable(
    '20',
    'an integer from 1 to 100000, at least WS_CONNECT_RATE_PER_IP',
    'New connections per client IP allowed in a burst.',
    integer(1, 100_000),
  ),
  TRUSTED_PROXIES: variable(
    '',
    'empty or a comma-separated list of IPs and CIDRs (IPv4 or IPv6)',
    'Peers whose X-Forwarded-For is believed (the ingress); the client is the right-most untrusted hop.',
    z.string().transform((text, ctx) => {
      const parsed = parseCidrList(text);
      if (!parsed.ok) {
        ctx.addIssue({ code: 'custom', message: parsed.error });
        return z.NEVER;
      }
      return parsed.cidrs;
    }),
  ),
  WS_SUBSCRIBE_RATE: variable(
    '8',
    'an integer from 1 to 10000',
    'subscribe/unsubscribe requests per connection per second; past it an error (the request is not applied).',
    integer(1, 10_000),
  ),
  WS_SUBSCRIBE_BURST: variable(
    '20',
    'an integer from 1 to 10000, at least WS_SUBSCRIBE_RATE',
    'subscribe/unsubscribe requests per connection allowed in a burst.',
    integer(1, 10_000),
  ),
  WS_MESSAGE_RATE: variable(
    '100',
    'an integer from 1 to 100000',
    'Inbound messages of any kind per connection per second; past it an error and close 4003.',
    integer(1, 100_000),
  ),
  WS_MESSAGE_BURST: variable(
    '200',
    'an integer from 1 to 100000, at least WS_MESSAGE_RATE',
    'Inbound messages per connection allowed in a burst.',
    integer(1, 100_000),
  ),
  WS_MAX_PRODUCTS_PER_REQUEST: variable(
    '50',
    'an integer from 1 to 1000',
    'Product ids one subscribe/unsubscribe may name (root and per channel, together).',
    integer(1, 1_000),
  ),
  WS_MAX_SUBSCRIPTIONS: variable(
    '200',
    'an integer from 1 to 100000',
    '(channel, product) subscriptions one connection may hold.',
    integer(1, 100_000),
  ),
  WS_MAX_LIFETIME_MIN: variable(
    '0',
    'a number of minutes from 0 (off) to 10080; fractions allowed (0.5 = 30 s)',
    'Close connections older than this (4004) so they rebalance across replicas; clients reconnect at once.',
    z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'not a number')
      .transform(Number)
      .pipe(z.number().min(0).max(10_080)),
  ),
  WS_IDLE_TIMEOUT_S: variable(
    '120',
    '0 (off) or an integer from 8 to 960',
    'Close a peer that sends nothing, not even a pong, for this long (uWS pings it before).',
    integer(0, 960).refine((n) => n === 0 || n >= 8, 'uWS accepts 0 or 8 to 960'),
  ),
  WS_MAX_PAYLOAD_BYTES: variable(
    '4096',
    'an integer from 512 to 1048576',
    'Largest frame a client may send; a larger one gets message_too_big and close 1009.',
    integer(512, 1_048_576),
  ),
  // REST rate limit per client address (issue 16): its own block.
  REST_RATE_LIMIT_PER_SEC: variable(
    '10',
    'a number from 0 (off) to 100000; fractions allowed (0.5 = one request every 2 s)',
    'REST market-data requests per client IP per second, sustained (token bucket, exact across worker threads); past it 429 with Retry-After.',
    z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'not a number')
      .transform(Number)
      .pipe(z.number().min(0).max(100_000)),
  ),
  REST_RATE_LIMIT_BURST: variable(
    '15',
    'an integer from 1 to 100000, at least REST_RATE_LIMIT_PER_SEC',
    'REST market-data requests per client IP allowed in a burst (the token bucket size).',
    integer(1, 100_000),
  ),
} as const;

type Variables = typeof CONFIG_VARIABLES;
type Values = { [K in keyof Variables]: Variables[K] extends Variable<infer T> ? T : never };

export interface RedisConfig {
  readonly url: string;
  readonly password: string | undefined;
  /** Set: the primary is the one these Sentinels name; REDIS_URL's host and port are not used. */
  readonly sentinel?: SentinelConfig | undefined;
}

export interface SentinelConfig {
  readonly sentinels: readonly SentinelAddress[];
  readonly masterName: string;
  readonly password: string | undefined;
}

export interface GatewayConfig {
  readonly redis: RedisConfig;
  readonly limitsStore: (typeof LIMITS_STORES)[number];
  readonly publish: { readonly maxLen: number; readonly snapshotIntervalMs: number };
  readonly host: string;
  readonly port: number;
  readonly adminPort: number;
  /** How the open-files limit is shared out; undefined where the limit is unknown (no accept guard). */
  readonly descriptors: DescriptorBudget | undefined;
  readonly logLevel: Values['LOG_LEVEL'];
  readonly feedSource: Values['FEED_SOURCE'];
  readonly products: readonly ProductSpec[];
  readonly simEventsPerSecond: number;
  readonly simSeed: number | undefined;
  readonly subscribeTimeoutMs: number;
  readonly statusIntervalMs: number;
  readonly shutdownTimeoutMs: number;
  readonly drainSpreadMs: number;
  readonly workerThreads: number;
  /** Where workerThreads came from: the variable, or the CPU limit detected for its default. */
  readonly workerThreadsFrom: string;
  readonly workerStallMs: number;
  readonly idleTimeoutSeconds: number;
  readonly maxPayloadBytes: number;
  readonly flowControl: FlowControlConfig;
  readonly limits: LimitsConfig;
  /** REST market-data requests per client IP; undefined when REST_RATE_LIMIT_PER_SEC is 0. */
  readonly restRateLimit: RestRateLimitConfig | undefined;
}

export interface RestRateLimitConfig {
  readonly perSecond: number;
  readonly burst: number;
}

export interface LimitsConfig {
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly connectRate: { readonly perSecond: number; readonly burst: number };
  readonly trustedProxies: readonly Cidr[];
  readonly subscribeRate: { readonly perSecond: number; readonly burst: number };
  readonly messageRate: { readonly perSecond: number; readonly burst: number };
  readonly maxProductsPerRequest: number;
  readonly maxSubscriptions: number;
  readonly maxLifetimeMinutes: number;
}

export interface FlowControlConfig {
  readonly throttleMs: number;
  readonly highWaterBytes: number;
  readonly maxBackpressureBytes: number;
  readonly slowQueueMaxMessages: number;
  readonly slowConsumerTimeoutMs: number;
  readonly checkIntervalMs: number;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: GatewayConfig }
  | { readonly ok: false; readonly errors: readonly string[] };

/** What the configuration depends on besides the environment, read by the caller. */
export interface HostFacts {
  /** The process's soft RLIMIT_NOFILE; undefined if unknown (WS_MAX_CONNECTIONS is then taken as given). */
  readonly openFilesLimit?: number | undefined;
  /** net.core.somaxconn, which caps each listen socket's accept queue; undefined if unknown (512 is assumed). */
  readonly somaxconn?: number | undefined;
}

/** Parses every variable and collects every problem, so an operator fixes them all in one go. */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  host: HostFacts = {},
): ConfigResult {
  const values: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const [name, spec] of Object.entries(CONFIG_VARIABLES) as [string, Variable<unknown>][]) {
    const given = env[name];
    // An empty variable means "use the default", as in most shells' ${VAR:-default}.
    const raw = given === undefined || given.trim() === '' ? spec.defaultValue : given.trim();
    const parsed = spec.schema.safeParse(raw);
    if (parsed.success) {
      values[name] = parsed.data;
    } else {
      const why = parsed.error.issues.map((i) => i.message).join('; ');
      const shown = given !== undefined && spec.shown ? spec.shown(given) : given;
      errors.push(`${name}=${JSON.stringify(shown)} is invalid (${why}): expected ${spec.accepts}`);
    }
  }
  const v = values as Values;
  if (
    values.WS_MAX_BACKPRESSURE_BYTES !== undefined &&
    values.WS_BACKPRESSURE_HIGH_BYTES !== undefined &&
    v.WS_MAX_BACKPRESSURE_BYTES < 2 * v.WS_BACKPRESSURE_HIGH_BYTES
  ) {
    errors.push(
      `WS_MAX_BACKPRESSURE_BYTES=${JSON.stringify(env.WS_MAX_BACKPRESSURE_BYTES ?? '')} is invalid (below twice ` +
        `WS_BACKPRESSURE_HIGH_BYTES=${v.WS_BACKPRESSURE_HIGH_BYTES}): expected ${CONFIG_VARIABLES.WS_MAX_BACKPRESSURE_BYTES.accepts}`,
    );
  }
  if (
    values.WS_MAX_BACKPRESSURE_BYTES !== undefined &&
    values.WS_BACKPRESSURE_HIGH_BYTES !== undefined &&
    values.PRODUCTS !== undefined
  ) {
    const fit = catchUpFit(v.WS_BACKPRESSURE_HIGH_BYTES, v.PRODUCTS);
    if (v.WS_MAX_BACKPRESSURE_BYTES < fit.required) {
      errors.push(
        `WS_MAX_BACKPRESSURE_BYTES=${JSON.stringify(env.WS_MAX_BACKPRESSURE_BYTES ?? '')} is invalid (below ${fit.required}: ` +
          `a slow consumer's catch-up may leave half of WS_BACKPRESSURE_HIGH_BYTES=${v.WS_BACKPRESSURE_HIGH_BYTES} ` +
          `plus its largest queued message buffered, ${fit.largestMessage} bytes for the ${v.PRODUCTS.length} products of PRODUCTS, ` +
          `and the ErrSlowConsume after it needs ${fit.slowConsumeFrame} more; raise it, lower WS_BACKPRESSURE_HIGH_BYTES ` +
          `or serve fewer products): expected ${CONFIG_VARIABLES.WS_MAX_BACKPRESSURE_BYTES.accepts}`,
      );
    }
  }
  for (const [rate, burst] of [
    ['WS_CONNECT_RATE_PER_IP', 'WS_CONNECT_BURST_PER_IP'],
    ['WS_SUBSCRIBE_RATE', 'WS_SUBSCRIBE_BURST'],
    ['WS_MESSAGE_RATE', 'WS_MESSAGE_BURST'],
    ['REST_RATE_LIMIT_PER_SEC', 'REST_RATE_LIMIT_BURST'],
  ] as const) {
    const r = values[rate] as number | undefined;
    const b = values[burst] as number | undefined;
    if (r !== undefined && b !== undefined && b < r) {
      errors.push(
        `${burst}=${JSON.stringify(env[burst] ?? '')} is invalid (below ${rate}=${r}): expected ${CONFIG_VARIABLES[burst].accepts}`,
      );
    }
  }
  if (values.PORT !== undefined && v.PORT !== 0 && v.ADMIN_PORT === v.PORT) {
    errors.push(
      `ADMIN_PORT=${JSON.stringify(env.ADMIN_PORT ?? '')} is invalid (the same as PORT=${v.PORT}): expected ${CONFIG_VARIABLES.ADMIN_PORT.accepts}`,
    );
  }
  errors.push(...sentinelProblems(env, values));
  const descriptors =
    host.openFilesLimit === undefined || values.WS_WORKER_THREADS === undefined
      ? undefined
      : descriptorBudget(host.openFilesLimit, v.WS_WORKER_THREADS, host.somaxconn);
  let maxConnections = v.WS_MAX_CONNECTIONS;
  if (descriptors && maxConnections !== undefined) {
    const given = (env.WS_MAX_CONNECTIONS ?? '').trim() !== '';
    const fits = descriptors.maxConnections;
    if (given ? maxConnections > fits : fits < 1) {
      errors.push(
        `WS_MAX_CONNECTIONS=${JSON.stringify(env.WS_MAX_CONNECTIONS ?? '')} is invalid (the open-files limit is ` +
          `${descriptors.limit} and the process keeps ${descriptors.limit - fits} of them for itself with ` +
          `WS_WORKER_THREADS=${v.WS_WORKER_THREADS}: a reserve of ${descriptors.reserve} for what can be accepted between ` +
          `two readings of the accept guard (${descriptors.listeners} listen socket${descriptors.listeners > 1 ? 's' : ''} × ` +
          `${descriptors.acceptBurst}, a full accept queue each, and 64 for the admin listener, Redis and logs), ` +
          `${descriptors.pauseAt - descriptors.resumeAt} between pausing and reopening and ${descriptors.base} for Node and its threads; ` +
          `${fits < 1 ? 'no connection fits; raise the limit or lower WS_WORKER_THREADS' : `at most ${fits} fit`}): ` +
          `expected ${CONFIG_VARIABLES.WS_MAX_CONNECTIONS.accepts}`,
      );
    }
    if (!given) maxConnections = Math.min(maxConnections, fits);
  }
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    config: {
      redis: {
        url: v.REDIS_URL,
        password: v.REDIS_PASSWORD === '' ? undefined : v.REDIS_PASSWORD,
        sentinel:
          v.REDIS_SENTINELS.length === 0
            ? undefined
            : {
                sentinels: v.REDIS_SENTINELS,
                masterName: v.REDIS_SENTINEL_MASTER,
                password: v.REDIS_SENTINEL_PASSWORD === '' ? undefined : v.REDIS_SENTINEL_PASSWORD,
              },
      },
      limitsStore: v.LIMITS_STORE,
      publish: { maxLen: v.PUBLISH_MAXLEN, snapshotIntervalMs: v.PUBLISH_SNAPSHOT_MS },
      host: v.HOST,
      port: v.PORT,
      adminPort: v.ADMIN_PORT,
      descriptors,
      logLevel: v.LOG_LEVEL,
      feedSource: v.FEED_SOURCE,
      products: v.PRODUCTS,
      simEventsPerSecond: v.SIM_EVENTS_PER_SEC,
      simSeed: v.SIM_SEED,
      subscribeTimeoutMs: v.SUBSCRIBE_TIMEOUT_MS,
      statusIntervalMs: v.STATUS_INTERVAL_MS,
      shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS,
      drainSpreadMs: v.DRAIN_SPREAD_MS,
      workerThreads: v.WS_WORKER_THREADS,
      workerThreadsFrom: env.WS_WORKER_THREADS?.trim() ? 'WS_WORKER_THREADS' : DEFAULT_WORKER_THREADS.source,
      workerStallMs: v.WS_WORKER_STALL_MS,
      idleTimeoutSeconds: v.WS_IDLE_TIMEOUT_S,
      maxPayloadBytes: v.WS_MAX_PAYLOAD_BYTES,
      flowControl: {
        throttleMs: v.WS_THROTTLE_MS,
        highWaterBytes: v.WS_BACKPRESSURE_HIGH_BYTES,
        maxBackpressureBytes: v.WS_MAX_BACKPRESSURE_BYTES,
        slowQueueMaxMessages: v.WS_SLOW_QUEUE_MAX_MESSAGES,
        slowConsumerTimeoutMs: v.WS_SLOW_CONSUMER_TIMEOUT_MS,
        checkIntervalMs: v.WS_BACKPRESSURE_CHECK_MS,
      },
      limits: {
        maxConnections,
        maxConnectionsPerIp: v.WS_MAX_CONNECTIONS_PER_IP,
        connectRate: { perSecond: v.WS_CONNECT_RATE_PER_IP, burst: v.WS_CONNECT_BURST_PER_IP },
        trustedProxies: v.TRUSTED_PROXIES,
        subscribeRate: { perSecond: v.WS_SUBSCRIBE_RATE, burst: v.WS_SUBSCRIBE_BURST },
        messageRate: { perSecond: v.WS_MESSAGE_RATE, burst: v.WS_MESSAGE_BURST },
        maxProductsPerRequest: v.WS_MAX_PRODUCTS_PER_REQUEST,
        maxSubscriptions: v.WS_MAX_SUBSCRIPTIONS,
        maxLifetimeMinutes: v.WS_MAX_LIFETIME_MIN,
      },
      restRateLimit:
        v.REST_RATE_LIMIT_PER_SEC === 0
          ? undefined
          : { perSecond: v.REST_RATE_LIMIT_PER_SEC, burst: v.REST_RATE_LIMIT_BURST },
    },
  };
}

/** Sentinels and a master name go together; a Sentinel password without Sentinels is a slip. */
function sentinelProblems(
  env: Readonly<Record<string, string | undefined>>,
  values: Record<string, unknown>,
): string[] {
  const sentinels = values.REDIS_SENTINELS as readonly SentinelAddress[] | undefined;
  const master = values.REDIS_SENTINEL_MASTER as string | undefined;
  if (sentinels === undefined || master === undefined) return [];
  const problems: string[] = [];
  const given = (name: string) => JSON.stringify(env[name] ?? '');
  if (sentinels.length > 0 && master === '')
    problems.push(
      `REDIS_SENTINEL_MASTER=${given('REDIS_SENTINEL_MASTER')} is invalid (REDIS_SENTINELS is set: the Sentinels need the master name): expected ${CONFIG_VARIABLES.REDIS_SENTINEL_MASTER.accepts}`,
    );
  if (sentinels.length === 0 && master !== '')
    problems.push(
      `REDIS_SENTINELS=${given('REDIS_SENTINELS')} is invalid (REDIS_SENTINEL_MASTER is set: no Sentinel to ask for it): expected ${CONFIG_VARIABLES.REDIS_SENTINELS.accepts}`,
    );
  if (sentinels.length === 0 && (env.REDIS_SENTINEL_PASSWORD ?? '').trim() !== '')
    problems.push(
      `REDIS_SENTINEL_PASSWORD="[redacted]" is invalid (REDIS_SENTINELS is not set: no Sentinel to use it with): expected ${CONFIG_VARIABLES.REDIS_SENTINEL_PASSWORD.accepts}`,
    );
  return problems;
}

/** Where the gateway's Redis connections go, in words, for the startup log line. */
export function describeRedisTarget(redis: RedisConfig): string {
  const url = new URL(redis.url);
  if (!redis.sentinel) return `${redactCredentials(redis.url)} (REDIS_URL)`;
  const sentinels = redis.sentinel.sentinels
    .map((s) => `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`)
    .join(',');
  return (
    `the primary of Sentinel master ${JSON.stringify(redis.sentinel.masterName)} via ${sentinels}; ` +
    `REDIS_URL supplies user, password, database and TLS, its host and port (${url.host}) are not used`
  );
}

/** The effective configuration as logged at startup (no secrets exist yet; redact them here when they do). */
export function describeConfig(config: GatewayConfig): Record<string, unknown> {
  return {
    ...config,
    redis: {
      target: describeRedisTarget(config.redis),
      url: redactCredentials(config.redis.url),
      password: config.redis.password && '[redacted]',
      ...(config.redis.sentinel && {
        sentinel: { ...config.redis.sentinel, password: config.redis.sentinel.password && '[redacted]' },
      }),
    },
    products: config.products.map((p) => p.id),
    limits: { ...config.limits, trustedProxies: config.limits.trustedProxies.length },
  };
}
