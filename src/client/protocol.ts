import type { Channel, Side } from '../market/types.js';

/**
 * The gateway's wire protocol as the SDK sees it (docs/protocol.md): a discriminated union on
 * `type` for every message the gateway sends, and the two requests a client sends.
 */

export type { Channel, Side };

/** [price, size] as canonical decimal strings. */
export type WireLevel = readonly [price: string, size: string];
/** [side, price, new size]: a zero size removes the level. */
export type WireChange = readonly [side: Side, price: string, size: string];

export interface SubscriptionsMessage {
  readonly type: 'subscriptions';
  readonly channels: readonly { readonly name: Channel; readonly product_ids: readonly string[] }[];
}

/** `level2` and `level2_batch`. */
export interface SnapshotMessage {
  readonly type: 'snapshot';
  readonly product_id: string;
  readonly bids: readonly WireLevel[];
  readonly asks: readonly WireLevel[];
  readonly sequence: number;
  readonly time: string;
}

export interface L2UpdateMessage {
  readonly type: 'l2update';
  readonly product_id: string;
  readonly changes: readonly WireChange[];
  readonly time: string;
  readonly sequence: number;
}

/** `ticker` and `ticker_batch` (both send `ticker` messages). */
export interface TickerMessage {
  readonly type: 'ticker';
  readonly sequence: number;
  readonly product_id: string;
  readonly price: string;
  readonly open_24h: string;
  readonly volume_24h: string;
  readonly low_24h: string;
  readonly high_24h: string;
  readonly volume_30d: string;
  readonly best_bid: string | null;
  readonly best_bid_size: string | null;
  readonly best_ask: string | null;
  readonly best_ask_size: string | null;
  readonly side: Side;
  readonly time: string;
  readonly trade_id: number;
  readonly last_size: string;
}

/** `matches`: `last_match` once on subscribe, then `match`. */
export interface MatchMessage {
  readonly type: 'match' | 'last_match';
  readonly trade_id: number;
  readonly sequence: number;
  readonly maker_order_id: string;
  readonly taker_order_id: string;
  readonly time: string;
  readonly product_id: string;
  readonly size: string;
  readonly price: string;
  readonly side: Side;
}

export interface HeartbeatMessage {
  readonly type: 'heartbeat';
  readonly sequence: number;
  readonly last_trade_id: number;
  readonly product_id: string;
  readonly time: string;
}

export interface StatusProduct {
  readonly id: string;
  readonly base_currency: string;
  readonly quote_currency: string;
  readonly status: string;
  /** null, or "feed stale: <reason>" while the gateway's upstream is unavailable. */
  readonly status_message: string | null;
}

export interface StatusMessage {
  readonly type: 'status';
  readonly products: readonly StatusProduct[];
  readonly currencies: readonly { readonly id: string; readonly name: string }[];
}

export interface ErrorMessage {
  readonly type: 'error';
  readonly message: string;
  readonly reason: string;
  /** The gateway's stable code (docs/protocol.md §8). */
  readonly code?: string;
}

export type ServerMessage =
  | SubscriptionsMessage
  | SnapshotMessage
  | L2UpdateMessage
  | TickerMessage
  | MatchMessage
  | HeartbeatMessage
  | StatusMessage
  | ErrorMessage;

export type ChannelEntry = Channel | { readonly name: Channel; readonly product_ids?: readonly string[] };

export interface SubscriptionRequest {
  readonly type: 'subscribe' | 'unsubscribe';
  readonly product_ids?: readonly string[];
  readonly channels: readonly ChannelEntry[];
}

/** The messages each channel carries, so a subscription's iterator is typed by its channel. */
export interface ChannelMessages {
  heartbeat: HeartbeatMessage;
  status: StatusMessage;
  ticker: TickerMessage;
  ticker_batch: TickerMessage;
  level2: SnapshotMessage | L2UpdateMessage;
  level2_batch: SnapshotMessage | L2UpdateMessage;
  matches: MatchMessage;
}
