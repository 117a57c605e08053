import { Backoff } from './backoff.js';
import { classifyClose } from './close-codes.js';
import { Emitter } from './emitter.js';
import { type BookOutcome, OrderBook, type StaleReason } from './order-book.js';
import { parseServerMessage } from './parse.js';
import type { Channel, ChannelMessages, ErrorMessage, ServerMessage, SnapshotMessage } from './protocol.js';
import { type Pair, requestsFor } from './requests.js';
import {
  abort,
  attachExtras,
  canPing,
  ping,
  type WebSocketConstructor,
  type WebSocketLike,
} from './socket.js';
import { Subscription, type SubscriptionOwner } from './subscription.js';

export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface DisconnectedEvent {
  readonly code: number;
  readonly reason: string;
  readonly willReconnect: boolean;
  /** The delay before the next attempt; undefined when the client stops. */
  readonly retryInMs: number | undefined;
}

export interface ClientEvents {
  state: ClientState;
  disconnected: DisconnectedEvent;
  /** Every message from the gateway, after the client has applied it. */
  message: ServerMessage;
  /** A book became inconsistent: its levels are dropped until a resync snapshot replaces them. */
  stale: { readonly product: string; readonly reason: StaleReason };
  /** A book is current again, at `sequence`. */
  synced: { readonly product: string; readonly sequence: number };
  /** A synced book changed. */
  book: OrderBook;
  /** An `error` message from the gateway (a refused request). */
  error: ErrorMessage;
  /** A frame the client could not read (not JSON, or a book message with bad fields). */
  invalid: { readonly problem: string };
}

export interface ClientOptions {
  /** For example `ws://localhost:8080/`. */
  readonly url: string;
  /** The WebSocket to use; defaults to the platform's global one (browsers). In Node 20, pass `ws`. */
  readonly WebSocket?: WebSocketConstructor;
  readonly reconnect?: {
    /** Backoff between consecutive failed connections: from the floor, doubling, up to the cap. */
    readonly floorMs?: number;
    readonly capMs?: number;
    /** The random delay before reconnecting after a routine close (1001, 1012, 4004). */
    readonly routineJitterMs?: number;
    /** A connection open this long without a watchdog trip resets the backoff. */
    readonly healthyAfterMs?: number;
    /** A handshake that has not completed after this long is abandoned. */
    readonly connectTimeoutMs?: number;
  };
  /** Backoff of repeated resynchronisations of one product's book (the first one is immediate). */
  readonly resync?: { readonly floorMs?: number; readonly capMs?: number };
  /** A book product with no heartbeat for this long is stale and resynchronised. */
  readonly staleAfterMs?: number;
  /**
   * A connection with no message at all for this long is dead: closed and reconnected. Applies while
   * heartbeats are due (a book or a heartbeat subscription) or the platform can ping (Node's `ws`).
   */
  readonly deadAfterMs?: number;
  /**
   * Whether every `level2` update must follow the previous one by exactly 1 (a gateway with
   * WS_THROTTLE_MS=0, the default). Set false for a throttled gateway; never applied on level2_batch.
   */
  readonly strictSequence?: boolean;
  /** Messages a subscription's iterator buffers before its overflow policy applies. */
  readonly bufferSize?: number;
  /** Source of randomness for the jitter (tests make it deterministic). */
  readonly random?: () => number;
}

interface BookState {
  readonly book: OrderBook;
  readonly channel: 'level2' | 'level2_batch';
  readonly resync: Backoff;
  resyncTimer: ReturnType<typeof setTimeout> | undefined;
  syncedAt: number;
  lastHeartbeatAt: number;
}

const PRODUCT_ID = /^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$/;
const ABNORMAL = 1006;
const NORMAL = 1000;

const key = (channel: Channel, productId: string) => `${channel} ${productId}`;
const isBookChannel = (c: Channel): c is 'level2' | 'level2_batch' => c === 'level2' || c === 'level2_batch';

/**
 * A client of the gateway that keeps its subscriptions and books correct across reconnections:
 * one connection at a time, backoff with full jitter, close codes in classes, Retry-After honoured,
 * a heartbeat watchdog, and per-product book resynchronisation (README "Client SDK").
 */
export class MatchbookClient extends Emitter<ClientEvents> implements SubscriptionOwner {
  private current: ClientState = 'connecting';
  private socket: WebSocketLike | undefined;
  private opened = false;
  private closing = false;
  private refusal: { status: number; retryAfterMs: number | undefined } | undefined;
  private lastActivity = 0;
  private readonly subs = new Map<string, Set<Subscription<Channel>>>();
  private readonly books = new Map<string, BookState>();
  private readonly backoff: Backoff;
  private readonly timers: {
    reconnect?: ReturnType<typeof setTimeout> | undefined;
    handshake?: ReturnType<typeof setTimeout> | undefined;
    healthy?: ReturnType<typeof setTimeout> | undefined;
    watchdog?: ReturnType<typeof setInterval> | undefined;
  } = {};
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly random: () => number;
  private readonly settings: {
    routineJitterMs: number;
    healthyAfterMs: number;
    connectTimeoutMs: number;
    resyncFloorMs: number;
    resyncCapMs: number;
    staleAfterMs: number;
    deadAfterMs: number;
    strictSequence: boolean;
    bufferSize: number;
  };

  constructor(private readonly options: ClientOptions) {
    super();
    const url = new URL(options.url);
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
      throw new TypeError(`url must be a ws:// or wss:// URL, got ${JSON.stringify(options.url)}`);
    }
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!impl) {
      throw new TypeError(
        'no WebSocket on this platform: pass one as options.WebSocket (the ws package in Node.js 20)',
      );
    }
    this.WebSocketImpl = impl;
    this.random = options.random ?? Math.random;
    const r = options.reconnect ?? {};
    this.backoff = new Backoff({ floorMs: r.floorMs ?? 500, capMs: r.capMs ?? 20_000 }, this.random);
    const staleAfterMs = options.staleAfterMs ?? 3_000;
    this.settings = {
      routineJitterMs: r.routineJitterMs ?? 1_000,
      healthyAfterMs: r.healthyAfterMs ?? 30_000,
      connectTimeoutMs: r.connectTimeoutMs ?? 10_000,
      resyncFloorMs: options.resync?.floorMs ?? 250,
      resyncCapMs: options.resync?.capMs ?? 10_000,
      staleAfterMs,
      deadAfterMs: options.deadAfterMs ?? 2 * staleAfterMs,
      strictSequence: options.strictSequence ?? true,
      bufferSize: options.bufferSize ?? 1_000,
    };
    if (this.settings.deadAfterMs < staleAfterMs)
      throw new RangeError('deadAfterMs must be at least staleAfterMs');
    this.connect();
  }

  get state(): ClientState {
    return this.current;
  }

  get url(): string {
    return this.options.url;
  }

  /** The book of a product subscribed on level2 or level2_batch. */
  book(productId: string): OrderBook | undefined {
    return this.books.get(productId)?.book;
  }

  /**
   * Subscribes to one channel for one product (none for `status`), now and after every reconnect,
   * until the subscription's unsubscribe(). A level2 subscription also keeps the product's book and
   * its heartbeat.
   */
  subscribe<C extends Channel>(channel: C, productId?: string): Subscription<C> {
    if (this.closing) throw new Error('the client is closed');
    const product = channel === 'status' ? '' : (productId ?? '');
    if (channel !== 'status' && !PRODUCT_ID.test(product)) {
      throw new TypeError(`${channel} needs a product id like "BTC-USD", got ${JSON.stringify(productId)}`);
    }
    if (isBookChannel(channel)) {
      const existing = this.books.get(product);
      if (existing && existing.channel !== channel) {
        throw new Error(`${product} already has a book on ${existing.channel}`);
      }
    }
    const before = this.wirePairs();
    const subscription = new Subscription(channel, product || undefined, this, this.settings.bufferSize);
    const k = key(channel, product);
    const set = this.subs.get(k) ?? new Set();
    set.add(subscription as unknown as Subscription<Channel>);
    this.subs.set(k, set);
    if (isBookChannel(channel) && !this.books.has(product)) {
      this.books.set(product, {
        book: new OrderBook(product, channel === 'level2' && this.settings.strictSequence),
        channel,
        resync: new Backoff(
          { floorMs: this.settings.resyncFloorMs, capMs: this.settings.resyncCapMs },
          this.random,
        ),
        resyncTimer: undefined,
        syncedAt: 0,
        lastHeartbeatAt: Date.now(),
      });
    }
    this.sendDifference('subscribe', this.wirePairs(), before);
    return subscription;
  }

  /** Closes for good: no reconnection; every subscription's iterator ends. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    const socket = this.socket;
    this.finishConnection();
    if (socket) socket.close(NORMAL, 'client closed');
    clearTimeout(this.timers.reconnect);
    for (const set of this.subs.values()) for (const s of set) s.end();
    this.subs.clear();
    for (const state of this.books.values()) clearTimeout(state.resyncTimer);
    this.books.clear();
    this.setState('closed');
  }

  /** @internal A subscription's unsubscribe(). */
  release(subscription: Subscription<Channel>): void {
    const k = key(subscription.channel, subscription.productId ?? '');
    const set = this.subs.get(k);
    if (!set?.delete(subscription as unknown as Subscription<Channel>)) return;
    const before = this.wirePairs();
    if (set.size === 0) {
      this.subs.delete(k);
      const book = subscription.productId ? this.books.get(subscription.productId) : undefined;
      if (book && isBookChannel(subscription.channel)) {
        clearTimeout(book.resyncTimer);
        this.books.delete(subscription.productId!);
      }
    }
    this.sendDifference('unsubscribe', before, this.wirePairs());
  }

  /** @internal The current book as a snapshot message, for a level2 iterator that overflowed. */
  bookSnapshot(productId: string): SnapshotMessage | undefined {
    const view = this.books.get(productId)?.book.view();
    if (!view?.synced) return undefined;
    return {
      type: 'snapshot',
      product_id: productId,
      bids: view.bids,
      asks: view.asks,
      sequence: view.sequence,
      time: new Date().toISOString(),
    };
  }

  /** What the gateway should have subscribed: the subscriptions plus a heartbeat per book product. */
  private wirePairs(): Map<string, Pair> {
    const pairs = new Map<string, Pair>();
    for (const [k, set] of this.subs) {
      const first = set.values().next().value;
      if (first) pairs.set(k, { channel: first.channel, productId: first.productId ?? '' });
    }
    for (const productId of this.books.keys())
      pairs.set(key('heartbeat', productId), { channel: 'heartbeat', productId });
    return pairs;
  }

  /** Sends `type` for the pairs in `from` that are not in `without`, if connected. */
  private sendDifference(
    type: 'subscribe' | 'unsubscribe',
    from: Map<string, Pair>,
    without: Map<string, Pair>,
  ): void {
    const pairs = [...from].filter(([k]) => !without.has(k)).map(([, pair]) => pair);
    if (pairs.length > 0) this.sendRequests(type, pairs);
  }

  private sendRequests(type: 'subscribe' | 'unsubscribe', pairs: Iterable<Pair>): void {
    if (!this.socket || !this.opened) return;
    for (const request of requestsFor(type, pairs)) this.socket.send(JSON.stringify(request));
  }

  private setState(state: ClientState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit('state', state);
  }

  private connect(): void {
    this.timers.reconnect = undefined;
    this.opened = false;
    this.refusal = undefined;
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocketImpl(this.options.url);
    } catch (error) {
      this.socket = undefined;
      this.afterClose(ABNORMAL, `cannot open a WebSocket: ${(error as Error).message}`);
      return;
    }
    this.socket = socket;
    attachExtras(socket, {
      refused: (status, retryAfterMs) => {
        if (this.socket === socket) this.refusal = { status, retryAfterMs };
      },
      alive: () => {
        if (this.socket === socket) this.lastActivity = Date.now();
      },
    });
    socket.onopen = () => {
      if (this.socket === socket) this.onOpen();
    };
    socket.onmessage = (event) => {
      if (this.socket === socket)
        this.onMessage(typeof event.data === 'string' ? event.data : String(event.data));
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.finishConnection();
      this.afterClose(event.code, event.reason);
    };
    // The close event that always follows an error carries what the client acts on.
    socket.onerror = () => {};
    this.timers.handshake = setTimeout(() => {
      if (this.socket !== socket || this.opened) return;
      this.finishConnection();
      abort(socket);
      this.afterClose(ABNORMAL, `the handshake did not complete within ${this.settings.connectTimeoutMs} ms`);
    }, this.settings.connectTimeoutMs);
  }

  private onOpen(): void {
    this.opened = true;
    clearTimeout(this.timers.handshake);
    const now = Date.now();
    this.lastActivity = now;
    for (const state of this.books.values()) state.lastHeartbeatAt = now;
    this.setState('open');
    this.sendRequests('subscribe', this.wirePairs().values());
    this.timers.healthy = setTimeout(() => this.backoff.reset(), this.settings.healthyAfterMs);
    this.timers.watchdog = setInterval(() => this.watch(), Math.max(50, this.settings.staleAfterMs / 4));
  }

  /** Forgets the socket (its later events are ignored) and stops the connection's timers. */
  private finishConnection(): void {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.onopen = null;
      socket.onmessage = null;
      socket.onclose = null;
    }
    clearTimeout(this.timers.handshake);
    clearTimeout(this.timers.healthy);
    clearInterval(this.timers.watchdog);
    for (const state of this.books.values()) {
      clearTimeout(state.resyncTimer);
      state.resyncTimer = undefined;
      this.settle(state, state.book.markStale('disconnected'));
    }
  }

  private afterClose(code: number, closeReason: string): void {
    if (this.closing) return;
    const reason = this.refusal ? `upgrade refused with HTTP ${this.refusal.status}` : closeReason;
    const kind = classifyClose(code);
    if (kind === 'stop') {
      this.emit('disconnected', { code, reason, willReconnect: false, retryInMs: undefined });
      this.close();
      return;
    }
    const routine = kind === 'immediate' && this.opened && this.backoff.attempts === 0;
    let delay = routine ? this.random() * this.settings.routineJitterMs : this.backoff.next();
    const retryAfter = this.refusal?.retryAfterMs;
    if (retryAfter !== undefined)
      delay = Math.max(delay, retryAfter + this.random() * this.settings.routineJitterMs);
    this.setState('reconnecting');
    this.emit('disconnected', { code, reason, willReconnect: true, retryInMs: delay });
    // A listener may have closed the client.
    if (!this.closing) this.timers.reconnect = setTimeout(() => this.connect(), delay);
  }

  private watch(): void {
    const socket = this.socket;
    if (!socket) return;
    const now = Date.now();
    const silentMs = now - this.lastActivity;
    // Silence means death only where traffic is due: heartbeats, or pongs to the pings sent below.
    if (silentMs > this.settings.deadAfterMs && (this.heartbeatsDue() || canPing(socket))) {
      this.finishConnection();
      abort(socket);
      this.afterClose(ABNORMAL, `no message for ${silentMs} ms: the connection is dead`);
      return;
    }
    if (silentMs > this.settings.staleAfterMs) ping(socket);
    for (const state of this.books.values()) {
      if (state.book.synced && now - state.lastHeartbeatAt > this.settings.staleAfterMs) {
        this.settle(state, state.book.markStale('heartbeat'));
      } else if (state.book.synced && now - state.syncedAt > this.settings.healthyAfterMs) {
        state.resync.reset();
      }
    }
  }

  /** Whether the gateway sends this connection a heartbeat every second. */
  private heartbeatsDue(): boolean {
    if (this.books.size > 0) return true;
    for (const set of this.subs.values()) for (const s of set) if (s.channel === 'heartbeat') return true;
    return false;
  }

  private onMessage(text: string): void {
    this.lastActivity = Date.now();
    const parsed = parseServerMessage(text);
    if (parsed.kind === 'ignored') return;
    if (parsed.kind === 'invalid') {
      this.emit('invalid', { problem: parsed.problem });
      const state = parsed.productId === undefined ? undefined : this.books.get(parsed.productId);
      // A book message that cannot be applied is a message lost.
      if (state) this.settle(state, state.book.markStale('gap'));
      return;
    }
    const message = parsed.message;
    switch (message.type) {
      case 'snapshot':
      case 'l2update': {
        const state = this.books.get(message.product_id);
        if (state) {
          const outcome =
            message.type === 'snapshot' ? state.book.applySnapshot(message) : state.book.applyUpdate(message);
          this.settle(state, outcome, message.type === 'snapshot');
          this.deliver(state.channel, message.product_id, message);
        }
        break;
      }
      case 'heartbeat': {
        const state = this.books.get(message.product_id);
        if (state) {
          state.lastHeartbeatAt = this.lastActivity;
          this.settle(state, state.book.checkHeartbeat(message));
        }
        this.deliver('heartbeat', message.product_id, message);
        break;
      }
      case 'ticker':
        this.deliver('ticker', message.product_id, message);
        this.deliver('ticker_batch', message.product_id, message);
        break;
      case 'match':
      case 'last_match':
        this.deliver('matches', message.product_id, message);
        break;
      case 'status':
        this.deliver('status', '', message);
        break;
      case 'error':
        this.emit('error', message);
        break;
      case 'subscriptions':
        break;
    }
    this.emit('message', message);
  }

  /** Acts on what a message did to a book: events, and a resync when it became inconsistent. */
  private settle(state: BookState, outcome: BookOutcome, fromSnapshot = false): void {
    const product = state.book.productId;
    if (outcome === 'ignored') return;
    if (outcome === 'applied') {
      if (fromSnapshot) {
        state.syncedAt = Date.now();
        this.emit('synced', { product, sequence: state.book.sequence });
      }
      this.emit('book', state.book);
      return;
    }
    this.emit('stale', { product, reason: outcome.stale });
    if (outcome.stale !== 'disconnected') this.scheduleResync(state);
  }

  /** Unsubscribes and resubscribes the product's book channel alone, with its own backoff. */
  private scheduleResync(state: BookState): void {
    if (state.resyncTimer !== undefined) return;
    const first = state.resync.attempts === 0;
    const wait = state.resync.next();
    state.resyncTimer = setTimeout(
      () => {
        state.resyncTimer = undefined;
        if (state.book.synced || this.books.get(state.book.productId) !== state) return;
        const pair = [{ channel: state.channel, productId: state.book.productId }];
        this.sendRequests('unsubscribe', pair);
        this.sendRequests('subscribe', pair);
      },
      first ? 0 : wait,
    );
  }

  private deliver<C extends Channel>(channel: C, productId: string, message: ChannelMessages[C]): void {
    const set = this.subs.get(key(channel, productId));
    if (set) for (const s of set) (s as unknown as Subscription<C>).deliver(message);
  }
}
