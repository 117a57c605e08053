import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The gateway's Prometheus metrics, in a registry of its own. Labels are fixed, small sets
 * (channel names, reasons, source names): never an IP, a connection or a product list.
 */
export interface GatewayMetrics {
  readonly registry: Registry;
  readonly activeConnections: Gauge;
  readonly connectionsTotal: Counter;
  readonly connectionsRejectedTotal: Counter<'reason'>;
  readonly httpRejectedTotal: Counter<'reason'>;
  readonly disconnectionsTotal: Counter<'reason'>;
  readonly messagesSentTotal: Counter<'channel'>;
  readonly subscriptions: Gauge<'channel'>;
  readonly clientErrorsTotal: Counter<'reason'>;
  readonly feedInvalidEventsTotal: Counter<'reason'>;
  readonly feedToSendLatency: Histogram<'channel'>;
  readonly workerConnections: Gauge<'worker'>;
  readonly slowConsumers: Gauge;
  readonly internalErrorsTotal: Counter<'where'>;
  readonly feedStale: Gauge;
  readonly feedResyncsTotal: Counter<'reason'>;
  readonly feedStaleProducts: Gauge;
  readonly limitsStoreFallback: Gauge;
  readonly messagesConflatedTotal: Counter<'channel'>;
  readonly slowConsumerDisconnectsTotal: Counter<'reason'>;
  readonly workerRestartsTotal: Counter<'reason'>;
  readonly openDescriptors: Gauge;
  readonly listenPaused: Gauge;
  /** Adds a source of queued-message counts; ws_message_queue_size is their sum at scrape time. */
  addQueueSource(source: () => number): void;
  /**
   * Counts the events applied from one feed source in ws_feed_events_total{source}: a plain
   * number on the per-event path, handed to the counter at scrape time.
   */
  feedEventCounter(source: string): () => void;
}

export interface MetricsOptions {
  /**
   * Node's process metrics (CPU, memory, event loop of this thread). Only the main thread collects
   * them, so a process-wide aggregate counts them once.
   */
  readonly processMetrics: boolean;
}

export function createMetrics(options: MetricsOptions = { processMetrics: true }): GatewayMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const queueSources: Array<() => number> = [];
  const feedEventCounts: Array<{ readonly source: string; applied: number }> = [];
  const registers = [registry];
  // prom-client hashes the labels on every inc(): too much for every upstream event.
  new Counter({
    name: 'ws_feed_events_total',
    help: 'Upstream feed events applied, by feed source.',
    labelNames: ['source'],
    registers,
    collect() {
      for (const count of feedEventCounts) {
        this.labels(count.source).inc(count.applied);
        count.applied = 0;
      }
    },
  });
  new Gauge({
    name: 'ws_message_queue_size',
    help: 'Outbound messages accepted for delivery and not yet handed to a socket, over all queues.',
    registers,
    collect() {
      let total = 0;
      for (const source of queueSources) total += source();
      this.set(total);
    },
  });

  return {
    registry,
    activeConnections: new Gauge({
      name: 'ws_active_connections',
      help: 'Open WebSocket connections.',
      registers,
    }),
    connectionsTotal: new Counter({
      name: 'ws_connections_total',
      help: 'WebSocket connections accepted since start.',
      registers,
    }),
    connectionsRejectedTotal: new Counter({
      name: 'ws_connections_rejected_total',
      help: 'WebSocket upgrades refused, by reason (max_connections, per_ip_limit, connect_rate, table_full, draining, bad_address).',
      labelNames: ['reason'],
      registers,
    }),
    httpRejectedTotal: new Counter({
      name: 'ws_http_rejected_total',
      help: 'Plain HTTP requests on PORT refused, by reason (rate_limited: 429, table_full: 503, private_endpoint: 403).',
      labelNames: ['reason'],
      registers,
    }),
    disconnectionsTotal: new Counter({
      name: 'ws_disconnections_total',
      help: 'WebSocket connections closed, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    messagesSentTotal: new Counter({
      name: 'ws_messages_sent_total',
      help: 'Messages handed to sockets, by channel (a publish to N subscribers counts N).',
      labelNames: ['channel'],
      registers,
    }),
    subscriptions: new Gauge({
      name: 'ws_subscriptions',
      help: 'Current (connection, product) subscriptions, by channel.',
      labelNames: ['channel'],
      registers,
    }),
    clientErrorsTotal: new Counter({
      name: 'ws_client_errors_total',
      help: 'Error messages sent to clients, by reason code.',
      labelNames: ['reason'],
      registers,
    }),
    feedInvalidEventsTotal: new Counter({
      name: 'ws_feed_invalid_events_total',
      help: 'Upstream feed events rejected and dropped, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    feedToSendLatency: new Histogram({
      name: 'ws_feed_to_send_latency_seconds',
      help: 'Time from a feed event entering the gateway to the end of the event-loop turn that handed its message to uWebSockets.js (which writes it then), by channel.',
      labelNames: ['channel'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    }),
    feedStale: new Gauge({
      name: 'ws_feed_stale',
      help: '1 while the upstream feed is unavailable (clients are told on the status channel), else 0.',
      registers,
    }),
    feedResyncsTotal: new Counter({
      name: 'ws_feed_resyncs_total',
      help: 'Product books replaced by a snapshot after bootstrap, by reason (gap: behind within one upstream incarnation; incarnation: a new upstream incarnation).',
      labelNames: ['reason'],
      registers,
    }),
    feedStaleProducts: new Gauge({
      name: 'ws_feed_stale_products',
      help: "Products not served as live while they wait for a new upstream incarnation's snapshot.",
      registers,
    }),
    limitsStoreFallback: new Gauge({
      name: 'ws_limits_store_fallback',
      help: '1 while LIMITS_STORE=redis is unreachable and the per-process limits apply alone, else 0.',
      registers,
    }),
    internalErrorsTotal: new Counter({
      name: 'ws_internal_errors_total',
      help: 'Handler failures contained at the transport boundary (the connection concerned is closed with 1011), by handler.',
      labelNames: ['where'],
      registers,
    }),
    slowConsumers: new Gauge({
      name: 'ws_slow_consumers',
      help: 'Connections currently in conflated (slow-consumer) delivery.',
      registers,
    }),
    messagesConflatedTotal: new Counter({
      name: 'ws_messages_conflated_total',
      help: 'Messages merged into a later one instead of being sent (throttling, batching, slow consumers), by channel.',
      labelNames: ['channel'],
      registers,
    }),
    slowConsumerDisconnectsTotal: new Counter({
      name: 'ws_slow_consumer_disconnects_total',
      help: 'Slow connections cut off: timeout and queue_overflow (ErrSlowConsume, close 4002), backpressure_limit (at uWS maxBackpressure: a dropped message, or closed by uWS).',
      labelNames: ['reason'],
      registers,
    }),
    workerConnections: new Gauge({
      name: 'ws_worker_connections',
      help: 'Open WebSocket connections per worker thread (WS_WORKER_THREADS > 0).',
      labelNames: ['worker'],
      registers,
    }),
    workerRestartsTotal: new Counter({
      name: 'ws_worker_restarts_total',
      help: 'Worker threads replaced after they died, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    openDescriptors: new Gauge({
      name: 'ws_open_descriptors',
      help: "The process's open file descriptors, as the accept guard last counted them (set by the main thread).",
      registers,
    }),
    listenPaused: new Gauge({
      name: 'ws_listen_paused',
      help: '1 while the WebSocket listen sockets are closed because open descriptors neared the open-files limit, or a listen socket could not be reopened and is being retried, else 0.',
      registers,
    }),
    addQueueSource(source) {
      queueSources.push(source);
    },
    feedEventCounter(source) {
      const count = { source, applied: 0 };
      feedEventCounts.push(count);
      return () => {
        count.applied++;
      };
    },
  };
}
