import type uWS from 'uWebSockets.js';
import type { Logger } from 'pino';
import type { GatewayConfig } from './config/config.js';
import { SimulatorSource } from './feeds/simulator/simulator-source.js';
import type { FeedSource } from './feeds/types.js';
import { COINBASE_TIMINGS, Hub } from './hub/hub.js';
import { SampledLog } from './logging/sampled-log.js';
import { createMetrics, type GatewayMetrics } from './metrics/metrics.js';
import { Transport } from './server/transport.js';

export interface Gateway {
  readonly port: number;
  readonly metrics: GatewayMetrics;
  /** Graceful: readiness off, listener closed, clients sent 1001, feed stopped. */
  drain(): Promise<void>;
  /** Immediate: whatever is still open is closed. Safe to call after drain. */
  close(): Promise<void>;
}

function createFeed(config: GatewayConfig): FeedSource {
  switch (config.feedSource) {
    case 'simulator':
      return new SimulatorSource({
        products: config.products,
        eventsPerSecond: config.simEventsPerSecond,
        seed: config.simSeed,
      });
  }
}

/** The composition root: builds every part from the configuration and wires them together. */
export async function startGateway(config: GatewayConfig, logger: Logger, uws: typeof uWS): Promise<Gateway> {
  const metrics = createMetrics();
  const feed = createFeed(config);
  const invalidEvents = new SampledLog(logger);
  const feedEvents = metrics.feedEventsTotal.labels(feed.name);

  // The transport is the hub's sink, and the hub is the transport's source of initial messages.
  let hub: Hub | undefined;
  const transport = new Transport(
    {
      host: config.host,
      port: config.port,
      maxPayloadBytes: config.maxPayloadBytes,
      idleTimeoutSeconds: config.idleTimeoutSeconds,
      subscribeTimeoutMs: config.subscribeTimeoutMs,
    },
    {
      uws,
      catalogue: { hasProduct: (id) => hub!.hasProduct(id) },
      initialMessages: (channel, productId) => hub!.initialMessages(channel, productId),
      views: {
        restProducts: () => hub!.restProducts(),
        restProduct: (id) => hub!.restProduct(id),
        restBook: (id, level) => hub!.restBook(id, level),
        restTicker: (id) => hub!.restTicker(id),
      },
      readiness: {
        notReadyReason: () => {
          if (!feed.isLive()) return `feed ${feed.name} is not live`;
          if (!hub!.isReady()) return 'waiting for the first snapshot of every product';
          return undefined;
        },
      },
      metrics,
      logger,
    },
  );
  hub = new Hub(
    config.products,
    transport,
    {
      eventApplied: () => feedEvents.inc(),
      eventRejected: (reason, productId, detail) => {
        metrics.feedInvalidEventsTotal.labels(reason).inc();
        invalidEvents.warn(reason, { productId, detail, source: feed.name }, 'dropped invalid feed event');
      },
    },
    (productId) => feed.requestSnapshot(productId),
    { ...COINBASE_TIMINGS, statusMs: config.statusIntervalMs },
  );

  const port = await transport.listen();
  hub.start();
  await feed.start(hub);
  logger.info({ port, host: config.host, feed: feed.name }, 'listening');

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    hub.stop();
    await feed.stop();
    transport.close();
  };
  return {
    port,
    metrics,
    async drain() {
      await transport.drain(config.drainSpreadMs);
      await close();
    },
    close,
  };
}
