import { CURRENCIES, type ProductSpec } from '../config/products.js';
import type { TradeEvent } from '../feeds/types.js';
import type { BookChange, PriceLevel } from '../market/types.js';
import type { L2Book } from './book.js';
import type { TradeStats } from './rolling-stats.js';

/**
 * Serialisers for every message the hub publishes, field for field as the Coinbase Exchange feed
 * writes them. Each runs once per upstream event, never per subscriber.
 */

const priceAndSize = (level: PriceLevel): [string, string] => [level[0], level[1]];

export function encodeSnapshot(productId: string, book: L2Book, sequence: number, time: string): string {
  return JSON.stringify({
    type: 'snapshot',
    product_id: productId,
    bids: book.bids.top().map(priceAndSize),
    asks: book.asks.top().map(priceAndSize),
    sequence,
    time,
  });
}

/**
 * Byte for byte what JSON.stringify writes for {type: 'l2update', product_id, changes: [[side,
 * price, size], ...], time, sequence}, without building that object: this runs for every upstream
 * event. Written out without escaping, which the hub's validation makes safe: sides are 'buy' or
 * 'sell', prices and sizes canonical decimals, times ISO-8601 and sequences safe integers.
 */
export function encodeL2Update(
  productId: string,
  changes: Iterable<BookChange>,
  time: string,
  sequence: number,
): string {
  let json = `{"type":"l2update","product_id":${JSON.stringify(productId)},"changes":[`;
  let first = true;
  for (const [side, price, size] of changes) {
    json += `${first ? '' : ','}["${side}","${price}","${size}"]`;
    first = false;
  }
  return `${json}],"time":"${time}","sequence":${sequence}}`;
}

export function encodeMatch(trade: TradeEvent, type: 'match' | 'last_match'): string {
  return JSON.stringify({
    type,
    trade_id: trade.trade_id,
    sequence: trade.sequence,
    maker_order_id: trade.maker_order_id,
    taker_order_id: trade.taker_order_id,
    time: trade.time,
    product_id: trade.product_id,
    size: trade.size,
    price: trade.price,
    side: trade.side,
  });
}

/** `bid` and `ask`: the best levels right after the trade. */
export function encodeTicker(
  trade: TradeEvent,
  stats: TradeStats,
  bid: PriceLevel | undefined,
  ask: PriceLevel | undefined,
): string {
  return JSON.stringify({
    type: 'ticker',
    sequence: trade.sequence,
    product_id: trade.product_id,
    price: trade.price,
    open_24h: stats.open24h,
    volume_24h: stats.volume24h,
    low_24h: stats.low24h,
    high_24h: stats.high24h,
    volume_30d: stats.volume30d,
    best_bid: bid?.[0] ?? null,
    best_bid_size: bid?.[1] ?? null,
    best_ask: ask?.[0] ?? null,
    best_ask_size: ask?.[1] ?? null,
    // The ticker's side is the taker's: a sell maker means a buy (up-tick).
    side: trade.side === 'sell' ? 'buy' : 'sell',
    time: trade.time,
    trade_id: trade.trade_id,
    last_size: trade.size,
  });
}

export function encodeHeartbeat(
  productId: string,
  sequence: number,
  lastTradeId: number,
  time: string,
): string {
  return JSON.stringify({
    type: 'heartbeat',
    sequence,
    last_trade_id: lastTradeId,
    product_id: productId,
    time,
  });
}

/**
 * The longest `status_message` written (the hub's stale reasons are far shorter; a Redis error
 * text is cut here): it bounds the `status` message, the largest one a slow consumer's queue holds.
 */
export const STATUS_MESSAGE_MAX_CHARS = 256;

/** A product as the `status` channel lists it. */
function statusProduct(spec: ProductSpec, statusMessage: string | null) {
  return {
    id: spec.id,
    base_currency: spec.baseCurrency,
    quote_currency: spec.quoteCurrency,
    base_increment: spec.baseIncrement,
    quote_increment: spec.quoteIncrement,
    display_name: spec.id,
    status: 'online',
    status_message: statusMessage?.slice(0, STATUS_MESSAGE_MAX_CHARS) ?? null,
    min_market_funds: spec.minMarketFunds,
    post_only: false,
    limit_only: false,
    cancel_only: false,
    fx_stablecoin: false,
  };
}

/** `statusMessage`: each product's status_message, null while it is served normally. */
export function encodeStatus(
  products: readonly ProductSpec[],
  statusMessage: (product: ProductSpec) => string | null,
): string {
  const currencyIds = [...new Set(products.flatMap((p) => [p.baseCurrency, p.quoteCurrency]))];
  return JSON.stringify({
    type: 'status',
    products: products.map((p) => statusProduct(p, statusMessage(p))),
    currencies: currencyIds.map((id) => {
      const c = CURRENCIES.get(id)!;
      return {
        id: c.id,
        name: c.name,
        display_name: c.id,
        min_size: c.maxPrecision,
        status: 'online',
        status_message: null,
        max_precision: c.maxPrecision,
        convertible_to: [],
        details: {},
        default_network: '',
        supported_networks: [],
      };
    }),
  });
}

/** A product as GET /products writes it. */
export function restProduct(spec: ProductSpec) {
  return {
    id: spec.id,
    base_currency: spec.baseCurrency,
    quote_currency: spec.quoteCurrency,
    quote_increment: spec.quoteIncrement,
    base_increment: spec.baseIncrement,
    display_name: `${spec.baseCurrency}/${spec.quoteCurrency}`,
    min_market_funds: spec.minMarketFunds,
    margin_enabled: false,
    post_only: false,
    limit_only: false,
    cancel_only: false,
    status: 'online',
    status_message: '',
    auction_mode: false,
    trading_disabled: false,
    fx_stablecoin: false,
  };
}
