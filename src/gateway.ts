import type uWS from 'uWebSockets.js';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { AdminServer } from './admin/admin-server.js';
import type { GatewayConfig } from './config/config.js';
import { RedisFeedSource } from './feeds/redis/redis-source.js';
import { SimulatorSource } from './feeds/simulator/simulator-source.js';
import type { FeedSource } from './feeds/types.js';
import { COINBASE_TIMINGS, Hub, type PublicationSink } from './hub/hub.js';
import { admissionTableCapacity, ConnectionAdmission } from './limits/admission.js';
import { ConnectRateLimiter, type RateDecision } from './limits/rate-limits.js';
import { connectClusterLimits } from './limits/redis-limits.js';
import { RestRateLimiter } from './limits/rest-rate-limit.js';
import { SharedCounterTable } from './limits/shared-counters.js';
import { startAcceptGuard } from './limits/start-accept-guard.js';
import { SampledLog } from './logging/sampled-log.js';
import { monotonicMs } from './market/time.js';
import { createMetrics, type GatewayMetrics } from './metrics/metrics.js';
import {
  answerHttp,
  answerLimited,
  DRAINING,
  type HttpQuery,
  type HttpReply,
  healthRoute,
  type Readiness,
} from './server/http-routes.js';
import { type ConnectGate, type GateDecision, Transport, type TransportOptions } from './server/transport.js';
import type { WorkerFault, WorkerStartupFault } from './workers/protocol.js';
import { WorkerPool } from './workers/worker-pool.js';

export interface Gateway {
  readonly port: number;
  /** ADMIN_PORT as bound: /healthz, /readyz and /metrics on a listener of their own. */
  readonly adminPort: number;
  readonly metrics: GatewayMetrics;
  /** Graceful: listeners closed, clients sent 1001 (spread over DRAIN_SPREAD_MS), feed stopped. */
  drain(): Promise<void>;
  /** Immediate: whatever is still open is closed. Safe to call after drain. */
  close(): Promise<void>;
  /** Synchronous close of every uWS app, for the moment right before a forced exit. */
  closeNow(): void;
  /**
   * Test hook, in-process only: makes worker `index` crash or hang; resolves with ms from the
   * thread's end until its replacement listens.
   */
  injectWorkerFault(index: number, fault?: WorkerFault): Promise<number>;
}

/** Test hooks, in-process only. */
export interface GatewayTestHooks {
  /** The first incarnation of this worker fails to start. */
  readonly workerStartupFault?: { readonly worker: number; readonly fault: WorkerStartupFault };
}

/** Where connections are served: the main thread's own uWS app, or a pool of worker threads. */
interface Delivery extends PublicationSink {
  readonly port: number;
  /** Process liveness, as /healthz reports it on every thread. */
  healthy(): boolean;
  /** The process's metrics (every thread's, summed). */
  metrics(): Promise<HttpReply>;
  pauseListening(): void;
  resumeListening(): void;
  reopenFailing(): boolean;
  drain(spreadMs: number): Promise<void>;
  close(): Promise<void>;
  closeNow(): void;
  injectWorkerFault(index: number, fault: WorkerFault): Promise<number>;
}

function createFeed(config: GatewayConfig): FeedSource {
  switch (config.feedSource) {
    case 'redis':
      return new RedisFeedSource({ redis: config.redis, productIds: config.products.map((p) => p.id) });
    case 'simulator':
      return new SimulatorSource({
        products: config.products,
        eventsPerSecond: config.simEventsPerSecond,
        seed: config.simSeed,
      });
  }
}

/**
 * The asynchronous admission step. memory: the connect rate per IP in this process. redis: the
 * connect rate and the concurrent count per IP across every replica, falling back to the local
 * limits (and saying so in ws_limits_store_fallback) while Redis is unreachable.
 */
function createConnectGate(
  config: GatewayConfig,
  metrics: GatewayMetrics,
  logger: Logger,
): { gate: ConnectGate; close: () => Promise<void> } {
  const rateDecision = (decision: RateDecision): GateDecision =>
    decision.allowed ? decision : { ...decision, reason: 'connect_rate' };
  if (config.limitsStore === 'memory') {
    const connectRate = new ConnectRateLimiter(config.limits.connectRate);
    return {
      gate: { admit: async (clientIp) => rateDecision(await connectRate.admit(clientIp)), release: () => {} },
      close: async () => {},
    };
  }
  const { limits: cluster, close } = connectClusterLimits(
    config.redis,
    {
      replicaId: `${hostname()}:${process.pid}`,
      maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
      connectRate: config.limits.connectRate,
    },
    {
      fallbackChanged: (usingLocal) => {
        metrics.limitsStoreFallback.set(usingLocal ? 1 : 0);
        logger.warn(
          { usingLocal },
          usingLocal ? 'limits store unreachable: local limits only' : 'limits store back',
        );
      },
    },
  );
  return {
    gate: {
      admit: async (clientIp) => {
        const rate = await cluster.admitConnect(clientIp);
        if (!rate.allowed) return rateDecision(rate);
        return (await cluster.acquire(clientIp)) === 'ok'
          ? rate
          : { allowed: false, reason: 'per_ip_limit', retryAfterMs: 5_000 };
      },
      release: (clientIp) => void cluster.release(clientIp),
    },
    close,
  };
}

/**
 * The composition root: builds every part from the configuration and wires them together. `feed`
 * is the source FEED_SOURCE names unless one is given (the benchmark feeds the gateway the same
 * publisher as its peers through it). If it rejects, everything it started has been closed.
 */
export async function startGateway(
  config: GatewayConfig,
  logger: Logger,
  uws: typeof uWS,
  feed: FeedSource = createFeed(config),
  hooks: GatewayTestHooks = {},
): Promise<Gateway> {
  const metrics = createMetrics({ processMetrics: true });
  const invalidEvents = new SampledLog(logger);
  const feedEventApplied = metrics.feedEventCounter(feed.name);
  const transportOptions: TransportOptions = {
    host: config.host,
    port: config.port,
    maxPayloadBytes: config.maxPayloadBytes,
    idleTimeoutSeconds: config.idleTimeoutSeconds,
    subscribeTimeoutMs: config.subscribeTimeoutMs,
    flowControl: config.flowControl,
    limits: config.limits,
  };
  // Per-IP and total connection counts, exact across threads: column 0 is the main thread's,
  // column i + 1 worker i's.
  const admissionTable = SharedCounterTable.create(
    admissionTableCapacity(config.limits.maxConnections),
    config.workerThreads + 1,
  );
  const { gate, close: closeGate } = createConnectGate(config, metrics, logger);

  // The hub needs its sink at construction; the sink needs the hub to answer requests. This
  // forwarding sink breaks the cycle without making either know the other's concrete type. Before
  // delivery listens nobody can be subscribed, so what the hub publishes until then has no audience.
  let delivery: Delivery | undefined;
  const hub = new Hub(
    config.products,
    {
      publish: (topic, channel, payload, receivedAt) =>
        delivery?.publish(topic, channel, payload, receivedAt),
      hasSubscribers: (topic) => delivery?.hasSubscribers(topic) ?? false,
    },
    {
      eventApplied: feedEventApplied,
      feedLiveChanged: (live) => metrics.feedStale.set(live ? 0 : 1),
      conflated: (channel) => metrics.messagesConflatedTotal.labels(channel).inc(),
      eventRejected: (reason, productId, detail) => {
        metrics.feedInvalidEventsTotal.labels(reason).inc();
        invalidEvents.warn(reason, { productId, detail, source: feed.name }, 'dropped invalid feed event');
      },
      resynced: (reason) => metrics.feedResyncsTotal.labels(reason).inc(),
      staleProductsChanged: (count) => metrics.feedStaleProducts.set(count),
    },
    (productId) => feed.requestSnapshot(productId),
    { ...COINBASE_TIMINGS, statusMs: config.statusIntervalMs, throttleMs: config.flowControl.throttleMs },
    { wellFormedFeed: feed.wellFormed },
  );
  const readiness: Readiness = {
    notReadyReason: () => {
      const feedDown = feed.notLiveReason();
      if (feedDown) return feedDown;
      return hub.notReadyReason();
    },
  };
  // Every REST request is answered here, on the main thread (worker threads forward them), so
  // one limiter holds each address's bucket for the whole process.
  const restLimit = config.restRateLimit && new RestRateLimiter(config.restRateLimit);
  const restRefused = (reason: 'rate_limited' | 'table_full') =>
    metrics.httpRejectedTotal.labels(reason).inc();
  const http = restLimit
    ? (query: HttpQuery): HttpReply =>
        answerLimited(query, hub, readiness, restLimit, monotonicMs(), restRefused)
    : (query: HttpQuery): HttpReply => answerHttp(query, hub, readiness);

  const parts: MarketParts = { hub, http, metrics, logger, admissionTable, gate };
  // The feed starts before anything listens, so the first answer to any client (status channel,
  // /readyz) already has its state: with worker threads the first worker listens well before the last.
  hub.start();
  let draining = false;
  let admin: AdminServer;
  try {
    await feed.start(hub);
    delivery =
      config.workerThreads === 0
        ? await serveOnMainThread(transportOptions, { ...parts, uws })
        : await serveOnWorkers(config, transportOptions, parts, hooks);
    const listening = delivery;
    admin = await AdminServer.listen(
      config.host,
      config.adminPort,
      {
        healthz: () => healthRoute(listening.healthy()),
        readyz: () => (draining ? DRAINING : http({ route: 'readyz' })),
        metrics: () => listening.metrics(),
      },
      (error) => logger.error({ err: error }, 'admin listener failed'),
    );
  } catch (error) {
    await delivery?.close();
    hub.stop();
    await feed.stop();
    await closeGate();
    throw error;
  }
  const active = delivery;
  const guard = startAcceptGuard(config.descriptors, config.limits.maxConnections, active, metrics, logger);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    guard?.stop();
    hub.stop();
    await feed.stop();
    await active.close();
    await admin.close();
    await closeGate();
  };
  return {
    port: active.port,
    adminPort: admin.port,
    metrics,
    async drain() {
      draining = true;
      guard?.stop();
      await active.drain(config.drainSpreadMs);
      await close();
    },
    close,
    closeNow: () => active.closeNow(),
    injectWorkerFault: (index, fault = 'crash') => active.injectWorkerFault(index, fault),
  };
}

interface MarketParts {
  readonly hub: Hub;
  readonly http: (query: HttpQuery) => HttpReply;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly admissionTable: SharedCounterTable;
  readonly gate: ConnectGate;
}

async function serveOnMainThread(
  options: TransportOptions,
  parts: MarketParts & { readonly uws: typeof uWS },
): Promise<Delivery> {
  const { hub, metrics } = parts;
  const metricsReply = async (): Promise<HttpReply> => ({
    status: 200,
    body: await metrics.registry.metrics(),
    contentType: metrics.registry.contentType,
  });
  const transport = new Transport(options, {
    uws: parts.uws,
    market: {
      hasProduct: (productId) => hub.hasProduct(productId),
      // Synchronous: nothing can be published between these messages and the subscribe.
      requestInitial: (channel, productId, deliver) => deliver(hub.initialMessages(channel, productId)),
      http: parts.http,
      metrics: metricsReply,
    },
    metrics,
    logger: parts.logger,
    healthy: () => true,
    admission: new ConnectionAdmission(
      parts.admissionTable,
      0,
      options.limits.maxConnections,
      options.limits.maxConnectionsPerIp,
    ),
    gate: parts.gate,
  });
  const port = await transport.listen().catch((error: unknown) => {
    transport.close();
    throw error;
  });
  return {
    port,
    healthy: () => true,
    metrics: metricsReply,
    pauseListening: () => transport.pauseListening(),
    resumeListening: () => transport.resumeListening(),
    reopenFailing: () => transport.reopenFailing,
    publish: (topic, channel, payload, receivedAt) => transport.publish(topic, channel, payload, receivedAt),
    hasSubscribers: (topic) => transport.hasSubscribers(topic),
    drain: (spreadMs) => transport.drain(spreadMs),
    close: async () => transport.close(),
    closeNow: () => transport.close(),
    injectWorkerFault: () => Promise.reject(new Error('no worker threads: WS_WORKER_THREADS=0')),
  };
}

async function serveOnWorkers(
  config: GatewayConfig,
  options: TransportOptions,
  parts: MarketParts,
  hooks: GatewayTestHooks,
): Promise<Delivery> {
  const pool = new WorkerPool(
    {
      threads: config.workerThreads,
      transport: options,
      productIds: config.products.map((p) => p.id),
      logLevel: config.logLevel,
      stallMs: config.workerStallMs,
      ...(hooks.workerStartupFault ? { startupFault: hooks.workerStartupFault } : {}),
    },
    {
      initialMessages: (channel, productId) => parts.hub.initialMessages(channel, productId),
      http: parts.http,
      gate: parts.gate,
    },
    parts.admissionTable,
    parts.metrics,
    parts.logger,
  );
  const port = await pool.start();
  return {
    port,
    healthy: () => pool.healthy(),
    metrics: () => pool.metricsText(),
    pauseListening: () => pool.pauseListening(),
    resumeListening: () => pool.resumeListening(),
    // Each worker's transport reports its own in its ws_listen_paused.
    reopenFailing: () => false,
    publish: (topic, channel, payload, receivedAt) => pool.publish(topic, channel, payload, receivedAt),
    hasSubscribers: (topic) => pool.hasSubscribers(topic),
    drain: (spreadMs) => pool.drain(spreadMs),
    close: () => pool.close(),
    closeNow: () => pool.closeNow(),
    injectWorkerFault: (index, fault) => pool.injectFault(index, fault),
  };
}
