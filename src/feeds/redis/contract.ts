import { EPOCH_PATTERN } from '../epoch.js';
import type { FeedEvent, SnapshotEvent } from '../types.js';

/**
 * The upstream contract in Redis (docs/ingest.md): per product, a stream of events and a snapshot
 * key. Keys carry the product in a hash tag, so a product's stream and snapshot share a cluster slot.
 */
export const redisKeys = {
  events: (productId: string) => `mb:{${productId}}:events`,
  snapshot: (productId: string) => `mb:{${productId}}:snapshot`,
} as const;

/** The stream entry's single field: the event as JSON. */
export const EVENT_FIELD = 'e';

/** Orders two stream ids (`<ms>-<seq>`) as Redis does: negative when `a` is older than `b`. */
export function compareStreamIds(a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split('-').map(Number);
  const [bMs = 0, bSeq = 0] = b.split('-').map(Number);
  return aMs - bMs || aSeq - bSeq;
}

/** The snapshot key's value: the book at `event.sequence`, and the id of the stream entry it includes. */
export interface StoredSnapshot {
  readonly stream_id: string;
  readonly event: SnapshotEvent;
}

export type Decoded<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: string };

const fail = (reason: string) => ({ ok: false, reason }) as const;

/**
 * Structural validation of an event read from Redis: the right fields with the right JSON types.
 * Values (decimals, sequences, crossing) are the hub's to check, as for every source.
 */
export function decodeEvent(json: string): Decoded<FeedEvent> {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return fail('not JSON');
  }
  return checkEvent(value);
}

export function decodeSnapshot(json: string): Decoded<StoredSnapshot> {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return fail('snapshot is not JSON');
  }
  if (!isRecord(value) || typeof value.stream_id !== 'string' || !/^\d+-\d+$/.test(value.stream_id)) {
    return fail('snapshot has no valid stream_id');
  }
  const event = checkEvent(value.event);
  if (!event.ok) return event;
  if (event.value.type !== 'snapshot') return fail('snapshot key does not hold a snapshot event');
  return { ok: true, value: { stream_id: value.stream_id, event: event.value } };
}

function checkEvent(value: unknown): Decoded<FeedEvent> {
  if (!isRecord(value)) return fail('event is not an object');
  if (typeof value.product_id !== 'string') return fail('product_id is not a string');
  if (typeof value.sequence !== 'number') return fail('sequence is not a number');
  if (typeof value.time !== 'string') return fail('time is not a string');
  if (value.epoch !== undefined && (typeof value.epoch !== 'string' || !EPOCH_PATTERN.test(value.epoch)))
    return fail('epoch is not a string of 21 digits');
  switch (value.type) {
    case 'snapshot':
      if (!isLevels(value.bids) || !isLevels(value.asks))
        return fail('bids/asks are not [price, size, orders] lists');
      return { ok: true, value: value as unknown as FeedEvent };
    case 'book':
      if (!isChanges(value.changes)) return fail('changes are not [side, price, size, orders] lists');
      return { ok: true, value: value as unknown as FeedEvent };
    case 'trade':
      if (!isChanges(value.changes)) return fail('changes are not [side, price, size, orders] lists');
      if (typeof value.trade_id !== 'number') return fail('trade_id is not a number');
      if (typeof value.maker_order_id !== 'string' || typeof value.taker_order_id !== 'string') {
        return fail('order ids are not strings');
      }
      if (typeof value.price !== 'string' || typeof value.size !== 'string')
        return fail('price/size are not strings');
      if (value.side !== 'buy' && value.side !== 'sell') return fail('side is not buy or sell');
      return { ok: true, value: value as unknown as FeedEvent };
    default:
      return fail('type is not snapshot, book or trade');
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isLevels(value: unknown): boolean {
  return (
    Array.isArray(value) &&
    value.every(
      (l) =>
        Array.isArray(l) &&
        l.length === 3 &&
        typeof l[0] === 'string' &&
        typeof l[1] === 'string' &&
        typeof l[2] === 'number',
    )
  );
}

function isChanges(value: unknown): boolean {
  return (
    Array.isArray(value) &&
    value.every(
      (c) =>
        Array.isArray(c) &&
        c.length === 4 &&
        (c[0] === 'buy' || c[0] === 'sell') &&
        typeof c[1] === 'string' &&
        typeof c[2] === 'string' &&
        typeof c[3] === 'number',
    )
  );
}
