import type { ServerMessage } from './protocol.js';

/**
 * Reads one text frame. Messages the book depends on (snapshot, l2update, heartbeat) are checked
 * field by field, so a malformed one is reported instead of corrupting a book; other known types
 * are passed on as sent; unknown types are ignored, as the protocol asks of clients.
 */
export type Parsed =
  | { readonly kind: 'message'; readonly message: ServerMessage }
  | { readonly kind: 'ignored' }
  | { readonly kind: 'invalid'; readonly problem: string; readonly productId?: string };

const KNOWN: ReadonlySet<string> = new Set([
  'subscriptions',
  'snapshot',
  'l2update',
  'ticker',
  'match',
  'last_match',
  'heartbeat',
  'status',
  'error',
]);

const isSequence = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isDecimal = (v: unknown): v is string =>
  typeof v === 'string' && v !== '' && Number.isFinite(Number(v));
const isLevel = (v: unknown): boolean =>
  Array.isArray(v) && v.length >= 2 && isDecimal(v[0]) && isDecimal(v[1]);
const isChange = (v: unknown): boolean =>
  Array.isArray(v) && (v[0] === 'buy' || v[0] === 'sell') && isDecimal(v[1]) && isDecimal(v[2]);

export function parseServerMessage(text: string): Parsed {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'invalid', problem: 'a frame is not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { kind: 'invalid', problem: 'a frame is not a JSON object' };
  }
  const m = value as Record<string, unknown>;
  if (typeof m.type !== 'string' || !KNOWN.has(m.type)) return { kind: 'ignored' };
  const problem = bookProblem(m);
  if (problem === undefined) return { kind: 'message', message: value as ServerMessage };
  return typeof m.product_id === 'string'
    ? { kind: 'invalid', problem, productId: m.product_id }
    : { kind: 'invalid', problem };
}

function bookProblem(m: Record<string, unknown>): string | undefined {
  const needsProduct = m.type === 'snapshot' || m.type === 'l2update' || m.type === 'heartbeat';
  if (!needsProduct) return undefined;
  if (typeof m.product_id !== 'string') return `${m.type} without a product_id`;
  if (!isSequence(m.sequence)) return `${m.type} of ${m.product_id} without a valid sequence`;
  if (m.type === 'snapshot') {
    const ok =
      Array.isArray(m.bids) && Array.isArray(m.asks) && m.bids.every(isLevel) && m.asks.every(isLevel);
    return ok ? undefined : `snapshot of ${m.product_id} with malformed levels`;
  }
  if (m.type === 'l2update') {
    const ok = Array.isArray(m.changes) && m.changes.every(isChange);
    return ok ? undefined : `l2update of ${m.product_id} with malformed changes`;
  }
  return undefined;
}
