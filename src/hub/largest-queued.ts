import type { ProductSpec } from '../config/products.js';
import {
  encodeHeartbeat,
  encodeMatch,
  encodeStatus,
  encodeTicker,
  STATUS_MESSAGE_MAX_CHARS,
} from './messages.js';

/** The longest safe integer (sequences, trade ids). */
const MAX_INTEGER = Number.MAX_SAFE_INTEGER;
/** Longer than any decimal the gateway writes: canonical prices and sizes have at most 15 digits, statistics sum them. */
const LONGEST_DECIMAL = '9'.repeat(32);
/** Order ids as the Coinbase feed writes them (UUIDs, 36 characters), with room to spare. */
const LONGEST_ORDER_ID = 'f'.repeat(64);
/** isoMicros() always writes 27 characters. */
const TIME = '2026-12-31T23:59:59.999999Z';

/**
 * The largest single message a slow consumer's queue can hold for these products, in characters
 * (one byte each: the serialisers write ASCII JSON): a `status` message with every product's
 * `status_message` at its longest, or a `match`, `heartbeat` or `ticker` with every field at its
 * longest. Level2 messages are never queued (a slow consumer gets a fresh snapshot instead).
 */
export function largestQueuedMessage(products: readonly ProductSpec[]): number {
  const status = encodeStatus(products, () => 'x'.repeat(STATUS_MESSAGE_MAX_CHARS)).length;
  let largest = status;
  for (const product of products) {
    const trade = {
      type: 'trade',
      product_id: product.id,
      sequence: MAX_INTEGER,
      time: TIME,
      trade_id: MAX_INTEGER,
      maker_order_id: LONGEST_ORDER_ID,
      taker_order_id: LONGEST_ORDER_ID,
      side: 'sell',
      price: LONGEST_DECIMAL,
      size: LONGEST_DECIMAL,
      changes: [],
    } as const;
    const stats = {
      open24h: LONGEST_DECIMAL,
      high24h: LONGEST_DECIMAL,
      low24h: LONGEST_DECIMAL,
      volume24h: LONGEST_DECIMAL,
      volume30d: LONGEST_DECIMAL,
    };
    const level = [LONGEST_DECIMAL, LONGEST_DECIMAL, MAX_INTEGER] as const;
    largest = Math.max(
      largest,
      encodeMatch(trade, 'last_match').length,
      encodeTicker(trade, stats, level, level).length,
      encodeHeartbeat(product.id, MAX_INTEGER, MAX_INTEGER, TIME).length,
    );
  }
  return largest;
}
