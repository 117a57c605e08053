/**
 * The soak's steady subscriber: one WebSocket on level2 + matches + ticker of several products that
 * keeps each book the way a Coinbase client does (the SDK's OrderBook, strict sequences: the soak
 * runs the gateway with WS_THROTTLE_MS=0) and checks the streams as it goes:
 * - level2: every l2update is the previous sequence + 1; a jump is legitimate only as a fresh
 *   snapshot, which replaces the book (docs/protocol.md §4.2, §7);
 * - matches: every trade_id is the previous + 1, except right after a fresh snapshot of the
 *   product (a resync or a new upstream incarnation, where trade ids jump or start again, §3.7).
 * If the connection is lost (a worker thread failing takes its connections with it) it connects
 * again with fresh books, and counts it.
 */
import WebSocket from 'ws';
import { OrderBook } from '../../src/client/order-book.js';
import { parseServerMessage } from '../../src/client/parse.js';
import type { ServerMessage } from '../../src/client/protocol.js';
import { increment } from './soak-socket.js';

const CHANNELS = ['level2', 'matches', 'ticker'];
/** Problems described in full in the report; past this many only counted. */
const DESCRIBED_PROBLEMS = 20;
const RECONNECT_DELAY_MS = 250;
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface SteadyTally {
  connects: number;
  reconnects: number;
  connectFailures: number;
  messages: number;
  /** Snapshots after a connection's first one per product: the gateway resynchronised the book. */
  resnapshots: number;
  /** l2updates whose sequence was not the previous + 1, with no snapshot in between. */
  bookGaps: number;
  /** matches whose trade_id was not the previous + 1, with no snapshot of the product in between. */
  tradeGaps: number;
  /** Books crossed after a message (best bid at or above best ask). */
  crossedBooks: number;
  /** Frames the SDK's parser rejected. */
  invalidFrames: number;
  closes: Record<string, number>;
  errors: Record<string, number>;
  problems: string[];
}

export const emptySteadyTally = (): SteadyTally => ({
  connects: 0,
  reconnects: 0,
  connectFailures: 0,
  messages: 0,
  resnapshots: 0,
  bookGaps: 0,
  tradeGaps: 0,
  crossedBooks: 0,
  invalidFrames: 0,
  closes: {},
  errors: {},
  problems: [],
});

/** A REST book (`GET /products/<id>/book?level=2`): levels are [price, size, num_orders]. */
export interface RestBook {
  readonly sequence: number;
  readonly bids: ReadonlyArray<readonly [string, string, ...unknown[]]>;
  readonly asks: ReadonlyArray<readonly [string, string, ...unknown[]]>;
}

interface Waiter {
  readonly productId: string;
  readonly sequence: number;
  readonly resolve: () => void;
}

export class SteadySubscriber {
  readonly tally = emptySteadyTally();
  private ws: WebSocket | undefined;
  private books = new Map<string, OrderBook>();
  /** Products whose first snapshot on this connection has arrived. */
  private snapshotted = new Set<string>();
  private lastTradeId = new Map<string, number>();
  /** Products with a fresh snapshot since their last match: the next trade_id may jump. */
  private resyncedSinceTrade = new Set<string>();
  private waiters: Waiter[] = [];
  private stopped = false;
  private onReady: (() => void) | undefined;

  constructor(
    private readonly url: string,
    private readonly productIds: readonly string[],
  ) {}

  /** Connects and resolves once every product's first snapshot has arrived. */
  start(): Promise<void> {
    const ready = new Promise<void>((resolve) => {
      this.onReady = resolve;
    });
    this.connect();
    return ready;
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  book(productId: string): OrderBook | undefined {
    return this.books.get(productId);
  }

  /** Resolves true once the book of `productId` is at `sequence` or past it, false after `timeoutMs`. */
  reached(productId: string, sequence: number, timeoutMs: number): Promise<boolean> {
    if ((this.books.get(productId)?.sequence ?? -1) >= sequence) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: Waiter = { productId, sequence, resolve: () => resolve(true) };
      this.waiters.push(waiter);
      setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs).unref();
    });
  }

  /**
   * Whether the book of `productId` equals the REST book: undefined if equal, else what differs.
   * Call it when both are at the same sequence.
   */
  differenceFrom(productId: string, rest: RestBook): string | undefined {
    const book = this.books.get(productId);
    if (!book?.synced) return `${productId}: the book is not synced (${book?.staleReason ?? 'no snapshot'})`;
    if (book.sequence !== rest.sequence)
      return `${productId}: the book is at ${book.sequence}, REST at ${rest.sequence}`;
    const same = (ours: readonly (readonly [string, string])[], theirs: RestBook['bids']) =>
      ours.length === theirs.length && ours.every(([p, s], i) => theirs[i]![0] === p && theirs[i]![1] === s);
    if (!same(book.bids, rest.bids)) return `${productId}: bids differ at ${rest.sequence}`;
    if (!same(book.asks, rest.asks)) return `${productId}: asks differ at ${rest.sequence}`;
    return undefined;
  }

  /** Closes (1000) and resolves once the socket has closed; no reconnect after it. */
  async stop(): Promise<void> {
    this.stopped = true;
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.close(1000);
    await closed;
  }

  private connect(): void {
    const ws = new WebSocket(this.url, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    this.ws = ws;
    this.books = new Map(this.productIds.map((id) => [id, new OrderBook(id, true)]));
    this.snapshotted = new Set();
    this.lastTradeId = new Map();
    this.resyncedSinceTrade = new Set();
    let opened = false;
    ws.once('open', () => {
      opened = true;
      this.tally.connects++;
      ws.send(JSON.stringify({ type: 'subscribe', product_ids: this.productIds, channels: CHANNELS }));
    });
    ws.on('message', (data) => this.onMessage(String(data)));
    ws.once('error', () => {
      if (!opened) this.tally.connectFailures++;
    });
    ws.once('close', (code) => {
      if (opened) increment(this.tally.closes, code);
      if (this.stopped) return;
      this.tally.reconnects++;
      setTimeout(() => {
        if (!this.stopped) this.connect();
      }, RECONNECT_DELAY_MS);
    });
  }

  private problem(text: string): void {
    if (this.tally.problems.length < DESCRIBED_PROBLEMS) this.tally.problems.push(text);
  }

  private onMessage(text: string): void {
    this.tally.messages++;
    const parsed = parseServerMessage(text);
    if (parsed.kind === 'invalid') {
      this.tally.invalidFrames++;
      this.problem(`invalid frame: ${parsed.problem}`);
      return;
    }
    if (parsed.kind === 'message') this.apply(parsed.message);
  }

  private apply(message: ServerMessage): void {
    switch (message.type) {
      case 'snapshot': {
        const book = this.books.get(message.product_id);
        if (!book) return;
        if (this.snapshotted.has(message.product_id)) {
          this.tally.resnapshots++;
          this.resyncedSinceTrade.add(message.product_id);
        }
        this.snapshotted.add(message.product_id);
        if (book.applySnapshot(message) !== 'applied') this.crossed(message.product_id, message.sequence);
        if (this.snapshotted.size === this.productIds.length) this.ready();
        this.settleWaiters(message.product_id, book.sequence);
        return;
      }
      case 'l2update': {
        const book = this.books.get(message.product_id);
        if (!book) return;
        const before = book.sequence;
        const outcome = book.applyUpdate(message);
        if (typeof outcome === 'object') {
          if (outcome.stale === 'gap') {
            this.tally.bookGaps++;
            this.problem(`${message.product_id}: l2update ${message.sequence} after ${before}, no snapshot`);
          } else this.crossed(message.product_id, message.sequence);
        }
        this.settleWaiters(message.product_id, book.sequence);
        return;
      }
      case 'last_match':
        this.lastTradeId.set(message.product_id, message.trade_id);
        return;
      case 'match': {
        const last = this.lastTradeId.get(message.product_id);
        const resynced = this.resyncedSinceTrade.delete(message.product_id);
        if (last !== undefined && message.trade_id !== last + 1 && !resynced) {
          this.tally.tradeGaps++;
          this.problem(`${message.product_id}: trade_id ${message.trade_id} after ${last}, no snapshot`);
        }
        this.lastTradeId.set(message.product_id, message.trade_id);
        return;
      }
      case 'error':
        increment(this.tally.errors, message.code ?? 'unknown');
        return;
      default:
        return;
    }
  }

  private crossed(productId: string, sequence: number): void {
    this.tally.crossedBooks++;
    this.problem(`${productId}: crossed book at ${sequence}`);
  }

  private ready(): void {
    const onReady = this.onReady;
    this.onReady = undefined;
    onReady?.();
  }

  private settleWaiters(productId: string, sequence: number): void {
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((w) => {
      if (w.productId !== productId || w.sequence > sequence) return true;
      w.resolve();
      return false;
    });
  }
}
