import type uWS from 'uWebSockets.js';
import type { HttpResponse, TemplatedApp, us_listen_socket, WebSocket } from 'uWebSockets.js';
import type { Logger } from 'pino';
import type { ProductCatalogue } from '../client/requests.js';
import { ClientSession } from '../client/session.js';
import {
  CLIENT_ERRORS,
  CLOSE_CODES,
  clientError,
  type DisconnectReason,
  encodeClientError,
} from '../errors/catalogue.js';
import { epochMs } from '../market/time.js';
import { CHANNELS, type Channel, topicOf } from '../market/types.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { type FlowConnection, FlowControl, type FlowControlOptions } from './flow-control.js';
import {
  DRAINING,
  type HttpQuery,
  type HttpReply,
  healthRoute,
  NOT_FOUND,
  statusLine,
} from './http-routes.js';

export interface TransportOptions {
  readonly host: string;
  readonly port: number;
  readonly maxPayloadBytes: number;
  readonly idleTimeoutSeconds: number;
  readonly subscribeTimeoutMs: number;
  readonly flowControl: FlowControlOptions & {
    readonly maxBackpressureBytes: number;
    readonly checkIntervalMs: number;
  };
}

/**
 * The transport's view of the market: the hub itself on the main thread, or a proxy to it from a
 * worker thread. Replies may be synchronous or asynchronous.
 */
export interface MarketAccess extends ProductCatalogue {
  /**
   * Calls `deliver` with the messages a new subscriber gets first, at a point in the stream where
   * subscribing to the topic at once yields exactly the updates that follow them.
   */
  requestInitial(channel: Channel, productId: string, deliver: (messages: readonly string[]) => void): void;
  http(query: HttpQuery): HttpReply | Promise<HttpReply>;
  metrics(): Promise<HttpReply>;
}

export interface TransportDeps {
  readonly uws: typeof uWS;
  readonly market: MarketAccess;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  /** Liveness of the whole process (false once a worker thread is stuck); /healthz reports it. */
  readonly healthy: () => boolean;
}

interface Connection {
  session: ClientSession | undefined;
  /** The connection as flow control sees it. */
  link: FlowConnection | undefined;
  readonly openedAt: number;
  /** Set when the gateway decides to close, so the close handler counts the right reason. */
  closeReason: DisconnectReason | undefined;
  closed: boolean;
  /** Topic → token of the latest attach still waiting for its initial messages. */
  readonly pendingAttaches: Map<string, number>;
}

/** uWS apps have close() since v20.3; the shipped typings omit it. */
type ClosableApp = TemplatedApp & { close(): void };

const DECODER = new TextDecoder();
const slowConsumerReasons = {
  timeout: 'the connection stayed behind for too long',
  queue_overflow: 'too many messages queued for the connection',
  backpressure_limit: 'the connection reached its buffer limit',
} as const;
const SUBSCRIBE_SWEEP_MS = 100;
const DRAIN_SLICE_MS = 50;
let attachTokens = 0;

/**
 * The only module that talks to uWebSockets.js: WebSocket connections, topic publishing and the
 * HTTP endpoints. Protocol logic lives in ClientSession, market state behind MarketAccess.
 */
export class Transport {
  private readonly app: ClosableApp;
  private readonly open = new Set<WebSocket<Connection>>();
  /** Connections awaiting their first subscribe, in connection order (so deadlines are ordered too). */
  private readonly awaitingSubscribe: Array<WebSocket<Connection>> = [];
  private readonly sentByChannel: ReadonlyMap<string, { inc(n?: number): void }>;
  private readonly latencyByChannel: ReadonlyMap<string, { observe(v: number): void }>;
  private readonly controlSent;
  private readonly resumedSent;
  private readonly flow: FlowControl<FlowConnection>;
  private listenSocket: us_listen_socket | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private flowTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private draining = false;
  private drained: (() => void) | undefined;

  constructor(
    private readonly options: TransportOptions,
    private readonly deps: TransportDeps,
  ) {
    const { metrics } = deps;
    this.sentByChannel = new Map(CHANNELS.map((c) => [c, metrics.messagesSentTotal.labels(c)]));
    this.latencyByChannel = new Map(CHANNELS.map((c) => [c, metrics.feedToSendLatency.labels(c)]));
    this.controlSent = metrics.messagesSentTotal.labels('control');
    this.resumedSent = metrics.messagesSentTotal.labels('resumed');
    this.flow = new FlowControl(options.flowControl, {
      slowConsumersChanged: (delta) => metrics.slowConsumers.inc(delta),
      conflated: (channel) => metrics.messagesConflatedTotal.labels(channel).inc(),
      disconnected: (reason) => metrics.slowConsumerDisconnectsTotal.labels(reason).inc(),
    });
    metrics.addQueueSource(() => this.flow.queuedMessages());
    this.app = deps.uws.App() as ClosableApp;
    this.registerWebSocket();
    this.registerHttp();
  }

  /** Starts listening on `port` (0: a free one); resolves with the bound port. */
  listen(port = this.options.port): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.options.host, port, (socket) => {
        if (!socket) {
          reject(
            new Error(`cannot listen on ${this.options.host}:${port} (address in use or not permitted)`),
          );
          return;
        }
        this.listenSocket = socket;
        this.sweepTimer = setInterval(() => this.closeUnsubscribed(), SUBSCRIBE_SWEEP_MS);
        this.sweepTimer.unref();
        this.flowTimer = setInterval(
          () => this.checkBackpressure(),
          this.options.flowControl.checkIntervalMs,
        );
        this.flowTimer.unref();
        resolve(this.deps.uws.us_socket_local_port(socket as unknown as uWS.us_socket));
      });
    });
  }

  get connectionCount(): number {
    return this.open.size;
  }

  /** Hands one serialised message to every subscriber of its topic (uWS writes it, no JS per subscriber). */
  publish(topic: string, channel: Channel, payload: string, receivedAtEpochMs: number): void {
    const captured = this.flow.capturing(topic);
    if (captured) for (const link of [...captured]) this.flow.capture(link, topic, channel, payload);
    const subscribers = this.app.numSubscribers(topic);
    if (subscribers === 0) return;
    this.app.publish(topic, payload, false, false);
    this.sentByChannel.get(channel)!.inc(subscribers);
    this.latencyByChannel.get(channel)!.observe((epochMs() - receivedAtEpochMs) / 1000);
  }

  /**
   * Stops accepting and asks every client to go away (1001), spread evenly over `spreadMs` so the
   * other replicas do not take every reconnect in the same instant. Resolves when all have closed;
   * the caller bounds the wait with its shutdown deadline and then calls close().
   */
  drain(spreadMs: number): Promise<void> {
    this.draining = true;
    if (this.listenSocket) {
      this.deps.uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
    }
    clearInterval(this.sweepTimer);
    clearInterval(this.flowTimer);
    const done = new Promise<void>((resolve) => {
      this.drained = resolve;
    });
    const leaving = [...this.open];
    const slices = Math.max(1, Math.ceil(spreadMs / DRAIN_SLICE_MS));
    const perSlice = Math.ceil(leaving.length / slices);
    const closeSlice = () => {
      for (const ws of leaving.splice(0, perSlice))
        this.end(ws, CLOSE_CODES.goingAway, 'going away', 'shutdown');
      if (leaving.length > 0) this.drainTimer = setTimeout(closeSlice, DRAIN_SLICE_MS);
    };
    closeSlice();
    if (this.open.size === 0) this.drained?.();
    return done;
  }

  /** Force-closes whatever is left; after this no native handle of the app remains open. */
  close(): void {
    clearInterval(this.sweepTimer);
    clearInterval(this.flowTimer);
    clearTimeout(this.drainTimer);
    this.draining = true;
    this.app.close();
  }

  private end(ws: WebSocket<Connection>, code: number, message: string, reason: DisconnectReason): void {
    const connection = ws.getUserData();
    if (connection.closed) return;
    connection.closeReason = reason;
    ws.end(code, message);
  }

  private registerWebSocket(): void {
    const { metrics } = this.deps;
    this.app.ws<Connection>('/', {
      maxPayloadLength: this.options.maxPayloadBytes,
      // Over this, uWS closes the connection instead of silently skipping it on publish; flow
      // control takes slow connections off their topics long before it is reached.
      maxBackpressure: this.options.flowControl.maxBackpressureBytes,
      closeOnBackpressureLimit: 1,
      idleTimeout: this.options.idleTimeoutSeconds,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        if (this.draining) {
          res.cork(() => {
            res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '1').end();
          });
          return;
        }
        const connection: Connection = {
          session: undefined,
          link: undefined,
          openedAt: performance.now(),
          closeReason: undefined,
          closed: false,
          pendingAttaches: new Map(),
        };
        res.upgrade(
          connection,
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
      },
      open: (ws) => {
        const connection = ws.getUserData();
        const adapter = this.connectionAdapter(ws);
        connection.link = this.flowLink(ws, adapter.attachTopic);
        connection.session = new ClientSession(adapter, this.deps.market, {
          subscriptionsChanged: (channel, delta) => metrics.subscriptions.labels(channel).inc(delta),
          errorSent: (code) => metrics.clientErrorsTotal.labels(code).inc(),
        });
        this.open.add(ws);
        this.awaitingSubscribe.push(ws);
        metrics.activeConnections.inc();
        metrics.connectionsTotal.inc();
      },
      message: (ws, message, isBinary) => {
        const { session } = ws.getUserData();
        if (isBinary) session?.handleBinary();
        else session?.handleText(DECODER.decode(message));
      },
      drain: (ws) => {
        const { link } = ws.getUserData();
        if (link) this.flow.drained(link);
      },
      close: (ws, code) => {
        const connection = ws.getUserData();
        connection.closed = true;
        if (connection.link) {
          // Closed by uWS at maxBackpressure while still slow: a slow-consumer disconnect too.
          if (!connection.closeReason && this.flow.isSlow(connection.link)) {
            connection.closeReason = 'slow_consumer';
            metrics.slowConsumerDisconnectsTotal.labels('backpressure_limit').inc();
          }
          this.flow.closed(connection.link);
        }
        connection.session?.dispose();
        this.open.delete(ws);
        metrics.activeConnections.dec();
        metrics.disconnectionsTotal
          .labels(connection.closeReason ?? (code === 1006 ? 'error' : 'client'))
          .inc();
        if (this.draining && this.open.size === 0) this.drained?.();
      },
    });
  }

  private connectionAdapter(ws: WebSocket<Connection>) {
    const connection = ws.getUserData();
    const attachTopic = (channel: Channel, productId: string) => {
      const topic = topicOf(channel, productId);
      const token = ++attachTokens;
      connection.pendingAttaches.set(topic, token);
      this.deps.market.requestInitial(channel, productId, (initial) => {
        // The client may have left, unsubscribed, or re-subscribed while we waited.
        if (connection.closed || connection.pendingAttaches.get(topic) !== token) return;
        connection.pendingAttaches.delete(topic);
        const link = connection.link!;
        if (this.flow.isSlow(link)) {
          this.flow.captureNew(link, topic, channel, initial);
          return;
        }
        ws.cork(() => {
          for (const payload of initial) ws.send(payload, false, false);
        });
        if (initial.length > 0) this.sentByChannel.get(channel)!.inc(initial.length);
        ws.subscribe(topic);
        this.flow.released(link, topic);
      });
    };
    return {
      attachTopic,
      sendControl: (payload: string) => {
        ws.send(payload, false, false);
        this.controlSent.inc();
      },
      attach: attachTopic,
      detach: (channel: Channel, productId: string) => {
        const topic = topicOf(channel, productId);
        connection.pendingAttaches.delete(topic);
        this.flow.unsubscribed(connection.link!, topic);
        ws.unsubscribe(topic);
      },
    };
  }

  private flowLink(
    ws: WebSocket<Connection>,
    attach: (channel: Channel, productId: string) => void,
  ): FlowConnection {
    return {
      bufferedAmount: () => ws.getBufferedAmount(),
      topics: () => ws.getTopics(),
      unsubscribe: (topic) => ws.unsubscribe(topic),
      subscribe: (topic) => ws.subscribe(topic),
      sendAll: (payloads) => {
        ws.cork(() => {
          for (const payload of payloads) ws.send(payload, false, false);
        });
        this.resumedSent.inc(payloads.length);
      },
      resnapshot: (topic) => {
        const colon = topic.indexOf(':');
        attach(topic.slice(0, colon) as Channel, topic.slice(colon + 1));
      },
      disconnectSlow: (reason) => {
        ws.send(
          encodeClientError(clientError(CLIENT_ERRORS.slowConsumer, slowConsumerReasons[reason])),
          false,
          false,
        );
        this.deps.metrics.clientErrorsTotal.labels(CLIENT_ERRORS.slowConsumer.code).inc();
        this.end(ws, CLOSE_CODES.slowConsumer, 'slow consumer', 'slow_consumer');
      },
    };
  }

  private checkBackpressure(): void {
    const links: FlowConnection[] = [];
    for (const ws of this.open) {
      const { link } = ws.getUserData();
      if (link) links.push(link);
    }
    this.flow.check(links, performance.now());
  }

  private closeUnsubscribed(): void {
    const deadline = performance.now() - this.options.subscribeTimeoutMs;
    while (this.awaitingSubscribe.length > 0) {
      const ws = this.awaitingSubscribe[0]!;
      const connection = ws.getUserData();
      if (connection.closed || connection.session?.hasSubscribed) {
        this.awaitingSubscribe.shift();
        continue;
      }
      if (connection.openedAt > deadline) return;
      this.awaitingSubscribe.shift();
      const seconds = this.options.subscribeTimeoutMs / 1000;
      ws.send(
        encodeClientError(
          clientError(CLIENT_ERRORS.subscribeTimeout, `no subscribe received within ${seconds} seconds`),
        ),
        false,
        false,
      );
      this.deps.metrics.clientErrorsTotal.labels(CLIENT_ERRORS.subscribeTimeout.code).inc();
      this.end(ws, CLOSE_CODES.subscribeTimeout, 'subscribe timeout', 'subscribe_timeout');
    }
  }

  private registerHttp(): void {
    const market = this.deps.market;
    this.app
      .get('/healthz', (res) => this.reply(res, healthRoute(this.deps.healthy())))
      .get('/readyz', (res) =>
        this.answer(res, () => (this.draining ? DRAINING : market.http({ route: 'readyz' }))),
      )
      .get('/metrics', (res) => this.answer(res, () => market.metrics()))
      .get('/products', (res) => this.answer(res, () => market.http({ route: 'products' })))
      .get('/products/:id', (res, req) => {
        const productId = req.getParameter(0);
        this.answer(res, () => market.http({ route: 'product', productId, resource: '', level: '' }));
      })
      .get('/products/:id/:resource', (res, req) => {
        // uWS requests live only during this callback: copy what is needed before any await.
        const productId = req.getParameter(0);
        const resource = req.getParameter(1);
        const level = req.getQuery('level') ?? '';
        this.answer(res, () => market.http({ route: 'product', productId, resource, level }));
      })
      .any('/*', (res) => this.reply(res, NOT_FOUND));
  }

  /** Answers now if the reply is ready, or later with uWS's abort handling if it is a promise. */
  private answer(res: HttpResponse, produce: () => HttpReply | Promise<HttpReply>): void {
    const result = produce();
    if (!(result instanceof Promise)) {
      this.reply(res, result);
      return;
    }
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    result.then(
      (reply) => {
        if (!aborted) this.reply(res, reply);
      },
      (error: unknown) => {
        this.deps.logger.error({ err: error }, 'HTTP handler failed');
        if (!aborted) this.reply(res, { status: 503, body: '{"message":"unavailable"}' });
      },
    );
  }

  private reply(res: HttpResponse, result: HttpReply): void {
    res.cork(() => {
      res
        .writeStatus(statusLine(result.status))
        .writeHeader('Content-Type', result.contentType ?? 'application/json')
        .end(result.body);
    });
  }
}
