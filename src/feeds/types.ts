import type { BookChange, PriceLevel, Side } from '../market/types.js';

/**
 * The upstream event model every feed source produces. Each event about a product carries that
 * product's sequence number, one more than the previous event's; every event changes the book.
 */

interface ProductEvent {
  readonly product_id: string;
  readonly sequence: number;
  /** ISO-8601 UTC with microseconds. */
  readonly time: string;
  /**
   * The upstream incarnation that wrote the event (src/feeds/epoch.ts); absent from sources that
   * never restart under a running hub (the simulator) and from writers of the older contract.
   */
  readonly epoch?: string;
}

/** The whole book: bootstraps a product or resynchronises it after a gap. */
export interface SnapshotEvent extends ProductEvent {
  readonly type: 'snapshot';
  readonly bids: readonly PriceLevel[];
  readonly asks: readonly PriceLevel[];
}

/** Limit orders added or cancelled: levels changed. */
export interface BookEvent extends ProductEvent {
  readonly type: 'book';
  readonly changes: readonly BookChange[];
}

/** One fill of a taker against a resting maker order, and the level it changed. */
export interface TradeEvent extends ProductEvent {
  readonly type: 'trade';
  readonly trade_id: number;
  readonly maker_order_id: string;
  readonly taker_order_id: string;
  /** The maker order's side, as in the Coinbase `match` message. */
  readonly side: Side;
  readonly price: string;
  readonly size: string;
  readonly changes: readonly BookChange[];
}

export type FeedEvent = SnapshotEvent | BookEvent | TradeEvent;

/** Where a feed source delivers events; implemented by the hub. */
export interface FeedSink {
  /** `receivedAt` is epochMs() when the event entered the gateway (comparable across threads). */
  onEvent(event: FeedEvent, receivedAt: number): void;
  /** An upstream entry that could not even be decoded into an event: counted and dropped. */
  onUndecodable(productId: string, detail: string): void;
  /** The source lost or regained its upstream: clients are told the feed is stale. */
  onLiveChanged(live: boolean, reason: string | undefined): void;
}

export interface FeedSource {
  /** Low-cardinality name used as the `source` metric label. */
  readonly name: string;
  /**
   * True when every event is well-formed by construction (canonical decimals, ISO-8601 times,
   * integer sequences), so the hub can skip its per-event format checks; false for any source
   * that decodes data from outside the process.
   */
  readonly wellFormed: boolean;
  start(sink: FeedSink): Promise<void>;
  stop(): Promise<void>;
  /** Undefined while events can flow; otherwise why not (drives /readyz). */
  notLiveReason(): string | undefined;
  /** Asks the source to send a fresh snapshot of one product (after the hub saw a gap). */
  requestSnapshot(productId: string): void;
}
