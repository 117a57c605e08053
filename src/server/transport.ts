import type uWS from 'uWebSockets.js';
import type {
  HttpRequest,
  HttpResponse,
  TemplatedApp,
  us_listen_socket,
  us_socket_context_t,
  WebSocket,
} from 'uWebSockets.js';
import type { Logger } from 'pino';
import type { LimitsConfig } from '../config/config.js';
import { CLIENT_ERRORS, CLOSE_CODES, type DisconnectReason, HTTP_ERRORS } from '../errors/catalogue.js';
import type { ConnectionAdmission } from '../limits/admission.js';
import {
  appendForwardedLine,
  formatIp,
  fromUwsAddress,
  parseIp,
  resolveClientAddress,
} from '../limits/client-address.js';
import { isForwardingHeader } from '../limits/forwarded-request.js';
import { InboundRateLimiter } from '../limits/rate-limits.js';
import { SampledLog } from '../logging/sampled-log.js';
import { monotonicMs } from '../market/time.js';
import { CHANNELS, type Channel } from '../market/types.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { ProductCatalogue } from '../session/requests.js';
import { ClientSession, type SessionObserver } from '../session/session.js';
import { Connection, type ConnectionContext, OutboundBytes, type SocketData } from './connection.js';
import { FlowControl, type FlowControlOptions } from './flow-control.js';
import { freePort } from './free-port.js';
import {
  BAD_ADDRESS,
  DRAINING,
  type HttpQuery,
  type HttpReply,
  healthRoute,
  NOT_FOUND,
  PRIVATE_ENDPOINT,
  staticRoute,
  statusLine,
} from './http-routes.js';
import { PublishTally } from './publish-tally.js';
import { loadStaticAssets, type StaticFile } from './static-assets.js';

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
  readonly limits: LimitsConfig;
}

/**
 * The asynchronous part of admission, decided where it is exact: the connect rate per IP (and, with
 * LIMITS_STORE=redis, the cluster-wide per-IP count), on the main thread for all workers.
 */
export interface ConnectGate {
  admit(clientIp: string): Promise<GateDecision>;
  /** A connection the gate admitted has ended (or its upgrade failed after admission). */
  release(clientIp: string): void;
}

export type GateDecision =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      readonly reason: 'connect_rate' | 'per_ip_limit';
      readonly retryAfterMs: number;
    };

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
  readonly admission: ConnectionAdmission;
  readonly gate: ConnectGate;
}

/** uWS apps have close() since v20.3; the shipped typings omit it. */
type ClosableApp = TemplatedApp & { close(): void };

const DECODER = new TextDecoder();
const SUBSCRIBE_SWEEP_MS = 100;
/** Backoff of the retries of a listen socket that could not be reopened. */
const REOPEN_MIN_DELAY_MS = 100;
const REOPEN_MAX_DELAY_MS = 5_000;
/**
 * Disconnects that point at a problem (a client's or the network's), logged sampled; a client
 * leaving, a shutdown or a lifetime rebalance are routine and only counted.
 */
const LOGGED_DISCONNECTS: ReadonlySet<DisconnectReason> = new Set([
  'idle',
  'slow_consumer',
  'flood',
  'message_too_big',
  'subscribe_timeout',
  'error',
]);

/**
 * The only module that talks to uWebSockets.js: WebSocket connections, topic publishing and the
 * HTTP endpoints. Protocol logic lives in ClientSession, market state behind MarketAccess.
 */
export class Transport {
  private readonly app: ClosableApp;
  private readonly open = new Set<Connection>();
  /** Connections awaiting their first subscribe, in connection order (so deadlines are ordered too). */
  private readonly awaitingSubscribe: Connection[] = [];
  /** Every connection in opening order, for WS_MAX_LIFETIME_MIN. */
  private readonly byAge: Connection[] = [];
  private readonly rejections: SampledLog;
  private readonly handlerErrors: SampledLog;
  private readonly disconnects: SampledLog;
  private readonly inbound: InboundRateLimiter;
  private readonly sentByChannel: ReadonlyMap<Channel, { inc(n?: number): void }>;
  private readonly publishTally: PublishTally;
  private readonly flow: FlowControl<Connection>;
  /** Shared by every connection of this transport (one object, not a closure per connection). */
  private readonly connectionContext: ConnectionContext;
  private readonly outbound = new OutboundBytes();
  /**
   * OutboundBytes.bytes when the buffers were last read, and how much may be handed to uWS before
   * they are read again (see publish()).
   */
  private lookedAtBytes = 0;
  private readonly lookEveryBytes: number;
  private readonly sessionObserver: SessionObserver;
  /** The live page and its assets, read once: every thread's app serves them. */
  private readonly assets: ReadonlyMap<string, StaticFile> = loadStaticAssets();
  private listenSocket: us_listen_socket | undefined;
  /** The port bound by listen(), reused when the accept guard reopens the listen socket. */
  private boundPort = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private flowTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private reopenTimer: NodeJS.Timeout | undefined;
  /** The wait before the next reopen attempt; 0 unless a reopen failed. */
  private reopenDelayMs = 0;
  private draining = false;
  private drained: (() => void) | undefined;

  constructor(
    private readonly options: TransportOptions,
    private readonly deps: TransportDeps,
  ) {
    const { metrics, market } = deps;
    const { highWaterBytes, maxBackpressureBytes } = options.flowControl;
    this.lookEveryBytes = Math.floor((maxBackpressureBytes - highWaterBytes) / 4);
    this.sentByChannel = new Map(CHANNELS.map((c) => [c, metrics.messagesSentTotal.labels(c)]));
    this.publishTally = new PublishTally((c) => ({
      sent: this.sentByChannel.get(c)!,
      latency: metrics.feedToSendLatency.labels(c),
    }));
    this.flow = new FlowControl(options.flowControl, {
      slowConsumersChanged: (delta) => metrics.slowConsumers.inc(delta),
      conflated: (channel) => metrics.messagesConflatedTotal.labels(channel).inc(),
      disconnected: (reason) => metrics.slowConsumerDisconnectsTotal.labels(reason).inc(),
    });
    metrics.addQueueSource(() => this.flow.queuedMessages());
    this.sessionObserver = {
      subscriptionsChanged: (channel, delta) => metrics.subscriptions.labels(channel).inc(delta),
      errorSent: (code) => metrics.clientErrorsTotal.labels(code).inc(),
    };
    this.connectionContext = {
      requestInitial: (channel, productId, deliver) => market.requestInitial(channel, productId, deliver),
      flow: this.flow,
      controlSent: metrics.messagesSentTotal.labels('control'),
      resumedSent: metrics.messagesSentTotal.labels('resumed'),
      sentByChannel: this.sentByChannel,
      errorSent: this.sessionObserver.errorSent,
      maxBackpressureBytes: options.flowControl.maxBackpressureBytes,
      outbound: this.outbound,
    };
    this.rejections = new SampledLog(deps.logger);
    this.handlerErrors = new SampledLog(deps.logger);
    this.disconnects = new SampledLog(deps.logger);
    this.inbound = new InboundRateLimiter(options.limits.messageRate, options.limits.subscribeRate);
    this.app = deps.uws.App() as ClosableApp;
    this.registerWebSocket();
    this.registerHttp();
  }

  /** Starts listening on `port` (0: a free one); resolves with the bound port. */
  async listen(requested = this.options.port): Promise<number> {
    const port = requested || (await freePort(this.options.host));
    return new Promise((resolve, reject) => {
      this.app.listen(this.options.host, port, (socket) => {
        if (!socket) {
          reject(
            new Error(`cannot listen on ${this.options.host}:${port} (address in use or not permitted)`),
          );
          return;
        }
        this.listenSocket = socket;
        this.boundPort = this.deps.uws.us_socket_local_port(socket as unknown as uWS.us_socket);
        this.sweepTimer = setInterval(() => {
          this.closeUnsubscribed();
          this.closeExpired();
        }, SUBSCRIBE_SWEEP_MS);
        this.sweepTimer.unref();
        this.flowTimer = setInterval(
          () => this.checkBackpressure(),
          this.options.flowControl.checkIntervalMs,
        );
        this.flowTimer.unref();
        resolve(this.boundPort);
      });
    });
  }

  /**
   * Closes the listen socket for the accept guard: near the open-files limit uSockets would spin on
   * a failing accept(). Established connections are untouched; new ones are refused meanwhile.
   */
  pauseListening(): void {
    if (this.reopenFailing) {
      clearTimeout(this.reopenTimer);
      this.setReopenDelay(0);
    }
    if (!this.listenSocket) return;
    this.deps.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
  }

  /**
   * Reopens the listen socket on the port it had (not while draining). If that fails (the port
   * was taken meanwhile), it is retried with a bounded backoff until it succeeds or the guard
   * pauses again; meanwhile `ws_listen_paused` stays 1 and every failure is logged.
   */
  resumeListening(): void {
    clearTimeout(this.reopenTimer);
    if (this.listenSocket || this.draining || this.boundPort === 0) return;
    this.app.listen(this.options.host, this.boundPort, (socket) => {
      if (socket) {
        this.listenSocket = socket;
        if (this.reopenDelayMs > 0)
          this.deps.logger.info(
            { port: this.boundPort },
            'websocket listener reopened after failed attempts',
          );
        this.setReopenDelay(0);
        return;
      }
      this.setReopenDelay(
        Math.min(REOPEN_MAX_DELAY_MS, Math.max(REOPEN_MIN_DELAY_MS, this.reopenDelayMs * 2)),
      );
      // The backoff bounds these lines: after the first few, one per REOPEN_MAX_DELAY_MS.
      this.deps.logger.error(
        { port: this.boundPort, retryInMs: this.reopenDelayMs },
        'websocket listener could not be reopened (address in use or not permitted); retrying',
      );
      this.reopenTimer = setTimeout(() => this.resumeListening(), this.reopenDelayMs);
      this.reopenTimer.unref();
    });
  }

  /** True while a reopen of the listen socket has failed and is being retried. */
  get reopenFailing(): boolean {
    return this.reopenDelayMs > 0;
  }

  private setReopenDelay(delayMs: number): void {
    this.reopenDelayMs = delayMs;
    this.deps.metrics.listenPaused.set(delayMs > 0 ? 1 : 0);
  }

  get connectionCount(): number {
    return this.open.size;
  }

  /** Whether a message published on `topic` now would reach anyone: a subscriber, or a slow connection taken off it. */
  hasSubscribers(topic: string): boolean {
    return this.app.numSubscribers(topic) > 0 || this.flow.capturing(topic) !== undefined;
  }

  /** Hands one serialised message to every subscriber of its topic (uWS writes it, no JS per subscriber). */
  publish(topic: string, channel: Channel, payload: string, receivedAtEpochMs: number): void {
    // uWS drops a published message at its hard limit and may still write the next ones of the
    // turn (a silent gap), so a live connection must never get there. A buffer read shows what
    // uWS holds after its last write, not the publishes it has not written yet, so a connection
    // read at or under the high-water mark ends up with at most the bytes handed to uWS around
    // that read: under two looks' worth. Reading again every quarter of the room between the mark
    // and the limit, counted in bytes rather than waiting for the timer's sweep (late on a loaded
    // machine), keeps every live connection under the limit.
    if (
      this.outbound.bytes - this.lookedAtBytes + payload.length > this.lookEveryBytes &&
      this.app.numSubscribers(topic) > 0
    )
      this.lookAtBuffers();
    const captured = this.flow.capturing(topic);
    if (captured)
      for (const connection of [...captured]) this.flow.capture(connection, topic, channel, payload);
    const subscribers = this.app.numSubscribers(topic);
    if (subscribers === 0) return;
    this.outbound.add(payload.length);
    this.app.publish(topic, payload, false, false);
    this.publishTally.published(channel, subscribers, receivedAtEpochMs);
  }

  /**
   * Stops accepting and asks every client to go away (1001), spread evenly over `spreadMs` so the
   * other replicas do not take every reconnect in the same instant: this thread's i-th of n
   * connections is closed at i/n of the window. Resolves when all have closed; the caller bounds
   * the wait with its shutdown deadline and then calls close().
   */
  drain(spreadMs: number): Promise<void> {
    this.draining = true;
    clearTimeout(this.reopenTimer);
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
    this.deps.logger.info(
      { connections: leaving.length, spreadMs },
      'websocket drain: closing every connection with 1001 (going away)',
    );
    const startedAt = performance.now();
    const closeAt = (index: number) => (index * spreadMs) / leaving.length;
    let next = 0;
    const closeDue = () => {
      const elapsed = performance.now() - startedAt;
      for (; next < leaving.length && closeAt(next) <= elapsed; next++)
        leaving[next]!.end(CLOSE_CODES.goingAway, 'going away', 'shutdown');
      if (next < leaving.length) this.drainTimer = setTimeout(closeDue, closeAt(next) - elapsed);
    };
    closeDue();
    if (this.open.size === 0) this.drained?.();
    return done;
  }

  /** Force-closes whatever is left; after this no native handle of the app remains open. */
  close(): void {
    clearInterval(this.sweepTimer);
    clearInterval(this.flowTimer);
    clearTimeout(this.drainTimer);
    clearTimeout(this.reopenTimer);
    this.draining = true;
    this.app.close();
  }

  private registerWebSocket(): void {
    const { metrics } = this.deps;
    this.app.ws<SocketData>('/', {
      // uWS drops a frame over maxPayloadLength with the connection and no message; up to four
      // times our limit we read it and answer "Message too big" instead.
      maxPayloadLength: Math.max(16 * 1024, this.options.maxPayloadBytes * 4),
      // Over this, uWS closes the connection instead of silently skipping it on publish; flow
      // control takes slow connections off their topics long before it is reached.
      maxBackpressure: this.options.flowControl.maxBackpressureBytes,
      closeOnBackpressureLimit: 1,
      idleTimeout: this.options.idleTimeoutSeconds,
      sendPingsAutomatically: true,
      maxLifetime: 0,
      upgrade: this.guardHttp('upgrade', (res, req, context) => this.upgrade(res, req, context)),
      open: this.guardSocket('open', (ws) => {
        const connection = ws.getUserData().connection;
        connection.opened(ws);
        connection.session = new ClientSession(
          connection,
          this.deps.market,
          this.sessionObserver,
          this.options.limits,
        );
        if (this.options.limits.maxLifetimeMinutes > 0) this.byAge.push(connection);
        this.open.add(connection);
        this.awaitingSubscribe.push(connection);
        metrics.activeConnections.inc();
        metrics.connectionsTotal.inc();
      }),
      message: this.guardSocket('message', (ws, message: ArrayBuffer, isBinary: boolean) =>
        this.receive(ws.getUserData().connection, message, isBinary),
      ),
      pong: (ws) => {
        ws.getUserData().connection.lastSeen = monotonicMs();
      },
      drain: this.guardSocket('drain', (ws) =>
        this.flow.drained(ws.getUserData().connection, performance.now()),
      ),
      close: (ws, code) => {
        const connection = ws.getUserData().connection;
        connection.closed = true;
        // Closed by uWS at maxBackpressure (while slow, or between two sweeps): a slow-consumer
        // disconnect too, not a network error.
        if (!connection.closeReason && (this.flow.isSlow(connection) || connection.cutAtHardLimit(code))) {
          connection.closeReason = 'slow_consumer';
          metrics.slowConsumerDisconnectsTotal.labels('backpressure_limit').inc();
        }
        this.flow.closed(connection);
        connection.session?.dispose();
        // The canonical text parses back to the very address admitted: no need to keep its bytes.
        this.deps.admission.release(parseIp(connection.clientIp)!);
        this.deps.gate.release(connection.clientIp);
        this.open.delete(connection);
        metrics.activeConnections.dec();
        const reason = connection.closeReason ?? this.unrequestedCloseReason(connection, code);
        metrics.disconnectionsTotal.labels(reason).inc();
        // "websocket" in the text: the runbook finds connection problems with `grep -i websocket`.
        if (LOGGED_DISCONNECTS.has(reason))
          this.disconnects.warn(reason, { code }, `websocket closed: ${reason}`);
        if (this.draining && this.open.size === 0) this.drained?.();
      },
    });
  }

  private checkBackpressure(): void {
    this.outbound.sweeps++;
    this.lookedAtBytes = this.outbound.bytes;
    this.flow.check(this.open, performance.now());
  }

  /** publish()'s look between two sweeps: connections over the high-water mark leave their topics now. */
  private lookAtBuffers(): void {
    this.lookedAtBytes = this.outbound.bytes;
    this.flow.takeOffOverHigh(this.open, performance.now());
  }

  /**
   * Admission happens here, before a socket exists: process-wide cap (503), concurrent connections
   * per client IP (429) and new connections per IP per second (429), each with Retry-After. The rate
   * decision is asynchronous, so per uWS's rules the request is copied first, an abort is handled,
   * and the upgrade is corked.
   */
  private upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    if (this.draining) {
      this.reject(res, 'draining', '503 Service Unavailable', 1);
      return;
    }
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const peer = fromUwsAddress(res.getRemoteAddress());
    if (!peer) {
      this.reject(res, 'bad_address', '400 Bad Request', 1);
      return;
    }
    const client = resolveClientAddress(peer, forwardedFor(req), this.options.limits.trustedProxies);
    const refused = this.deps.admission.tryAcquire(client);
    if (refused) {
      const perIp = refused === 'per_ip_limit';
      this.reject(res, refused, perIp ? '429 Too Many Requests' : '503 Service Unavailable', perIp ? 5 : 10);
      return;
    }
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
      this.deps.admission.release(client);
    });
    const clientIp = formatIp(client);
    void this.deps.gate
      .admit(clientIp)
      .catch((): GateDecision => ({ allowed: true }))
      .then((decision) => {
        if (aborted) {
          if (decision.allowed) this.deps.gate.release(clientIp);
          return;
        }
        if (!decision.allowed) {
          this.deps.admission.release(client);
          this.reject(
            res,
            decision.reason,
            '429 Too Many Requests',
            Math.max(1, Math.ceil(decision.retryAfterMs / 1000)),
          );
          return;
        }
        if (this.draining) {
          this.deps.admission.release(client);
          this.deps.gate.release(clientIp);
          this.reject(res, 'draining', '503 Service Unavailable', 1);
          return;
        }
        const connection = new Connection(this.connectionContext, clientIp, monotonicMs());
        res.cork(() => res.upgrade({ connection }, key, protocol, extensions, context));
      });
  }

  private reject(res: HttpResponse, reason: string, status: string, retryAfterSeconds: number): void {
    this.deps.metrics.connectionsRejectedTotal.labels(reason).inc();
    this.rejections.warn(reason, { status: status.slice(0, 3) }, `websocket upgrade rejected: ${reason}`);
    res.cork(() => {
      res
        .writeStatus(status)
        .writeHeader('Retry-After', String(retryAfterSeconds))
        .writeHeader('Content-Type', 'application/json')
        .end(JSON.stringify({ message: status.slice(4), reason }), true);
    });
  }

  /** Inbound frames: size, then rate limits, then the protocol. */
  private receive(connection: Connection, message: ArrayBuffer, isBinary: boolean): void {
    const now = monotonicMs();
    connection.lastSeen = now;
    if (message.byteLength > this.options.maxPayloadBytes) {
      connection.fail(
        CLIENT_ERRORS.messageTooBig,
        `frames are limited to ${this.options.maxPayloadBytes} bytes`,
        {
          code: CLOSE_CODES.messageTooBig,
          reason: 'message_too_big',
        },
      );
      return;
    }
    const decision = this.inbound.check(connection, !isBinary, now);
    if (decision === 'flood') {
      connection.fail(CLIENT_ERRORS.flood, 'too many messages: the connection is closed', {
        code: CLOSE_CODES.flood,
        reason: 'flood',
      });
    } else if (decision === 'subscribe_limited') {
      connection.fail(
        CLIENT_ERRORS.rateLimited,
        'too many subscribe/unsubscribe requests: this one was not applied',
      );
    } else if (isBinary) {
      connection.session?.handleBinary();
    } else {
      connection.session?.handleText(DECODER.decode(message));
    }
  }

  /**
   * A handler that throws must not take the process down with every other client: the failure is
   * counted and logged (sampled), and only the connection concerned is closed (1011).
   */
  private internalError(where: string, error: unknown, connection?: Connection): void {
    this.deps.metrics.internalErrorsTotal.labels(where).inc();
    this.handlerErrors.warn(where, { err: error }, 'handler failed; the connection concerned is closed');
    if (connection && !connection.closed) {
      try {
        connection.end(CLOSE_CODES.internalError, 'internal error', 'error');
      } catch {
        // Already closing.
      }
    }
  }

  private guardSocket<A extends unknown[]>(
    where: string,
    handler: (ws: WebSocket<SocketData>, ...rest: A) => void,
  ): (ws: WebSocket<SocketData>, ...rest: A) => void {
    return (ws, ...rest) => {
      try {
        handler(ws, ...rest);
      } catch (error) {
        this.internalError(where, error, ws.getUserData().connection);
      }
    };
  }

  private guardHttp(
    where: string,
    handler: (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => void,
  ): (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => void {
    return (res, req, context) => {
      try {
        handler(res, req, context);
      } catch (error) {
        this.internalError(where, error);
        try {
          res.cork(() => {
            res.writeStatus('500 Internal Server Error').end('{"message":"internal error"}', true);
          });
        } catch {
          // The response was already answered or aborted.
        }
      }
    };
  }

  /** A close the gateway did not ask for: the peer left, or uWS closed it (idle timeout, or an abrupt drop). */
  private unrequestedCloseReason(connection: Connection, code: number): DisconnectReason {
    if (code !== 1006) return 'client';
    const idleSeconds = this.options.idleTimeoutSeconds;
    // uWS's timers have a 4 s granularity.
    const silentFor = (performance.now() - connection.lastSeen) / 1000;
    return idleSeconds > 0 && silentFor >= idleSeconds - 4 ? 'idle' : 'error';
  }

  private closeExpired(): void {
    const maxAgeMs = this.options.limits.maxLifetimeMinutes * 60_000;
    if (maxAgeMs === 0) return;
    const bornBefore = performance.now() - maxAgeMs;
    while (this.byAge.length > 0) {
      const connection = this.byAge[0]!;
      if (!connection.closed && connection.openedAt > bornBefore) return;
      this.byAge.shift();
      connection.end(CLOSE_CODES.maxLifetime, 'max lifetime, reconnect', 'max_lifetime');
    }
  }

  private closeUnsubscribed(): void {
    const deadline = performance.now() - this.options.subscribeTimeoutMs;
    while (this.awaitingSubscribe.length > 0) {
      const connection = this.awaitingSubscribe[0]!;
      if (connection.closed || connection.session?.hasSubscribed) {
        this.awaitingSubscribe.shift();
        continue;
      }
      if (connection.openedAt > deadline) return;
      this.awaitingSubscribe.shift();
      const seconds = this.options.subscribeTimeoutMs / 1000;
      connection.fail(CLIENT_ERRORS.subscribeTimeout, `no subscribe received within ${seconds} seconds`, {
        code: CLOSE_CODES.subscribeTimeout,
        reason: 'subscribe_timeout',
      });
    }
  }

  private registerHttp(): void {
    const market = this.deps.market;
    this.app
      // A plain GET; an upgrade on / goes to the WebSocket route.
      .get('/', (res, req) =>
        this.reply(res, staticRoute(this.assets.get('/'), req.getHeader('if-none-match'))),
      )
      .get('/assets/*', (res, req) =>
        this.reply(res, staticRoute(this.assets.get(req.getUrl()), req.getHeader('if-none-match'))),
      )
      .get('/healthz', (res, req) => {
        if (this.refusedAsForwarded(res, req)) return;
        this.reply(res, healthRoute(this.deps.healthy()));
      })
      .get('/readyz', (res, req) => {
        if (this.refusedAsForwarded(res, req)) return;
        this.answer(res, () => (this.draining ? DRAINING : market.http({ route: 'readyz' })));
      })
      .get('/metrics', (res, req) => {
        if (this.refusedAsForwarded(res, req)) return;
        this.answer(res, () => market.metrics());
      })
      .get('/products', (res, req) => {
        const clientIp = this.clientIp(res, req);
        if (clientIp === undefined) return;
        this.answer(res, () => market.http({ route: 'products', clientIp }));
      })
      .get('/products/:id', (res, req) => {
        const clientIp = this.clientIp(res, req);
        if (clientIp === undefined) return;
        const productId = req.getParameter(0);
        this.answer(res, () =>
          market.http({ route: 'product', clientIp, productId, resource: '', level: '' }),
        );
      })
      .get('/products/:id/:resource', (res, req) => {
        // uWS requests live only during this callback: copy what is needed before any await.
        const clientIp = this.clientIp(res, req);
        if (clientIp === undefined) return;
        const productId = req.getParameter(0);
        const resource = req.getParameter(1);
        const level = req.getQuery('level') ?? '';
        this.answer(res, () => market.http({ route: 'product', clientIp, productId, resource, level }));
      })
      .any('/*', (res) => this.reply(res, NOT_FOUND));
  }

  /**
   * The private endpoints on PORT answer direct requests only: one through a proxy (the ingress)
   * gets 403 private_endpoint. ADMIN_PORT, which no Ingress routes, serves them to anyone.
   */
  private refusedAsForwarded(res: HttpResponse, req: HttpRequest): boolean {
    let forwarded = false;
    req.forEach((name) => {
      if (isForwardingHeader(name)) forwarded = true;
    });
    if (!forwarded) return false;
    this.deps.metrics.httpRejectedTotal.labels(HTTP_ERRORS.privateEndpoint.code).inc();
    this.reply(res, PRIVATE_ENDPOINT);
    return true;
  }

  /** The REST client's address, resolved as for upgrades; undefined (after answering 400) if unreadable. */
  private clientIp(res: HttpResponse, req: HttpRequest): string | undefined {
    const peer = fromUwsAddress(res.getRemoteAddress());
    if (!peer) {
      this.reply(res, BAD_ADDRESS);
      return undefined;
    }
    return formatIp(resolveClientAddress(peer, forwardedFor(req), this.options.limits.trustedProxies));
  }

  /** Answers now if the reply is ready, or later with uWS's abort handling if it is a promise. */
  private answer(res: HttpResponse, produce: () => HttpReply | Promise<HttpReply>): void {
    let result: HttpReply | Promise<HttpReply>;
    try {
      result = produce();
    } catch (error) {
      this.internalError('http', error);
      result = { status: 503, body: '{"message":"unavailable"}' };
    }
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
        this.internalError('http', error);
        if (!aborted) this.reply(res, { status: 503, body: '{"message":"unavailable"}' });
      },
    );
  }

  private reply(res: HttpResponse, result: HttpReply): void {
    res.cork(() => {
      res
        .writeStatus(statusLine(result.status))
        .writeHeader('Content-Type', result.contentType ?? 'application/json');
      for (const name in result.headers) res.writeHeader(name, result.headers[name]!);
      res.end(result.body);
    });
  }
}

/**
 * Every X-Forwarded-For line of the request, joined in order (uWS lower-cases header names, and
 * getHeader returns only the first line). Read synchronously: the request is only valid in the handler.
 */
function forwardedFor(req: HttpRequest): string | undefined {
  let joined: string | undefined;
  req.forEach((name, value) => {
    if (name === 'x-forwarded-for') joined = appendForwardedLine(joined, value);
  });
  return joined;
}
