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
import type { PublicationSink } from '../hub/hub.js';
import { CHANNELS, type Channel, topicOf } from '../market/types.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import {
  type HttpReply,
  healthRoute,
  type MarketViews,
  notFound,
  productRoute,
  productsRoute,
  type Readiness,
  readinessRoute,
  statusLine,
} from './http-routes.js';

export interface TransportOptions {
  readonly host: string;
  readonly port: number;
  readonly maxPayloadBytes: number;
  readonly idleTimeoutSeconds: number;
  readonly subscribeTimeoutMs: number;
}

/** What the transport needs from the rest of the gateway. */
export interface TransportDeps {
  readonly uws: typeof uWS;
  readonly catalogue: ProductCatalogue;
  readonly initialMessages: (channel: Channel, productId: string) => readonly string[];
  readonly views: MarketViews;
  readonly readiness: Readiness;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
}

interface Connection {
  session: ClientSession | undefined;
  readonly openedAt: number;
  /** Set when the gateway decides to close, so the close handler counts the right reason. */
  closeReason: DisconnectReason | undefined;
  closed: boolean;
}

/** uWS apps have close() since v20.3; the shipped typings omit it. */
type ClosableApp = TemplatedApp & { close(): void };

const DECODER = new TextDecoder();
const SUBSCRIBE_SWEEP_MS = 100;
const DRAIN_SLICE_MS = 50;

/**
 * The only module that talks to uWebSockets.js: WebSocket connections, topic publishing, and the
 * HTTP endpoints. Protocol logic lives in ClientSession; market state in the hub.
 */
export class Transport implements PublicationSink {
  private readonly app: ClosableApp;
  private readonly open = new Set<WebSocket<Connection>>();
  /** Connections awaiting their first subscribe, in connection order (so deadlines are ordered too). */
  private readonly awaitingSubscribe: Array<WebSocket<Connection>> = [];
  private readonly sentByChannel: ReadonlyMap<string, { inc(n?: number): void }>;
  private readonly latencyByChannel: ReadonlyMap<string, { observe(v: number): void }>;
  private readonly controlSent;
  private listenSocket: us_listen_socket | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
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
    this.app = deps.uws.App() as ClosableApp;
    this.registerWebSocket();
    this.registerHttp();
  }

  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.options.host, this.options.port, (socket) => {
        if (!socket) {
          reject(
            new Error(
              `cannot listen on ${this.options.host}:${this.options.port} (address in use or not permitted)`,
            ),
          );
          return;
        }
        this.listenSocket = socket;
        this.sweepTimer = setInterval(() => this.closeUnsubscribed(), SUBSCRIBE_SWEEP_MS);
        this.sweepTimer.unref();
        resolve(this.deps.uws.us_socket_local_port(socket as unknown as uWS.us_socket));
      });
    });
  }

  get connectionCount(): number {
    return this.open.size;
  }

  isDraining(): boolean {
    return this.draining;
  }

  publish(topic: string, channel: Channel, payload: string, receivedAt: number): void {
    const subscribers = this.app.numSubscribers(topic);
    if (subscribers === 0) return;
    this.app.publish(topic, payload, false, false);
    this.sentByChannel.get(channel)!.inc(subscribers);
    this.latencyByChannel.get(channel)!.observe((performance.now() - receivedAt) / 1000);
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
    clearTimeout(this.drainTimer);
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
      idleTimeout: this.options.idleTimeoutSeconds,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        if (this.draining) {
          res.cork(() => res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', '1').end());
          return;
        }
        const connection: Connection = {
          session: undefined,
          openedAt: performance.now(),
          closeReason: undefined,
          closed: false,
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
        connection.session = new ClientSession(this.connectionAdapter(ws), this.deps.catalogue, {
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
      close: (ws, code) => {
        const connection = ws.getUserData();
        connection.closed = true;
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
    return {
      sendControl: (payload: string) => {
        ws.send(payload, false, false);
        this.controlSent.inc();
      },
      attach: (channel: Channel, productId: string) => {
        const initial = this.deps.initialMessages(channel, productId);
        // The hub publishes synchronously, so nothing can be published between the snapshot and
        // the subscribe: the client gets every update after the snapshot's sequence exactly once.
        ws.cork(() => {
          for (const payload of initial) ws.send(payload, false, false);
        });
        if (initial.length > 0) this.sentByChannel.get(channel)!.inc(initial.length);
        ws.subscribe(topicOf(channel, productId));
      },
      detach: (channel: Channel, productId: string) => {
        ws.unsubscribe(topicOf(channel, productId));
      },
    };
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
    const { views, readiness } = this.deps;
    const reply = (res: HttpResponse, result: HttpReply): void => {
      res.cork(() => {
        res
          .writeStatus(statusLine(result.status))
          .writeHeader('Content-Type', result.contentType ?? 'application/json')
          .end(result.body);
      });
    };
    this.app
      .get('/healthz', (res) => reply(res, healthRoute()))
      .get('/readyz', (res) =>
        reply(
          res,
          this.draining
            ? { status: 503, body: '{"status":"not_ready","reason":"draining"}' }
            : readinessRoute(readiness),
        ),
      )
      .get('/metrics', (res) => this.serveMetrics(res, reply))
      .get('/products', (res) => reply(res, productsRoute(views)))
      .get('/products/:id', (res, req) => reply(res, productRoute(views, req.getParameter(0), '', '')))
      .get('/products/:id/:resource', (res, req) =>
        reply(
          res,
          productRoute(views, req.getParameter(0), req.getParameter(1), req.getQuery('level') ?? ''),
        ),
      )
      .any('/*', (res) => reply(res, notFound()));
  }

  private serveMetrics(res: HttpResponse, reply: (res: HttpResponse, result: HttpReply) => void): void {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const { registry } = this.deps.metrics;
    registry.metrics().then(
      (body) => {
        if (!aborted) reply(res, { status: 200, body, contentType: registry.contentType });
      },
      (error: unknown) => {
        this.deps.logger.error({ err: error }, 'metrics collection failed');
        if (!aborted) reply(res, { status: 503, body: '{"message":"metrics unavailable"}' });
      },
    );
  }
}
