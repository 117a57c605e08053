import type { PublisherStats } from './publisher.js';

/**
 * How the benchmark drives a peer server process (forked with an IPC channel, its PeerConfig as
 * JSON in the PEER_CONFIG environment variable):
 *   peer → parent  { kind: 'listening', port } once it accepts connections (the publisher runs from then on);
 *   parent → peer  { kind: 'stats', fromEpochMs, toEpochMs } → peer answers { kind: 'stats', stats }
 *                  (what was scheduled in that window, from the publisher's tick history);
 *   parent → peer  { kind: 'stop' }: close everything and exit 0.
 */
export interface PeerConfig {
  readonly host: string;
  readonly topics: readonly string[];
  readonly ratePerTopic: number;
  readonly tickMs: number;
  readonly seed: number;
}

export type ParentToPeer =
  | { readonly kind: 'stats'; readonly fromEpochMs: number; readonly toEpochMs: number }
  | { readonly kind: 'stop' };

export type PeerToParent =
  | { readonly kind: 'listening'; readonly port: number }
  | { readonly kind: 'stats'; readonly stats: PublisherStats };

/**
 * The client's request, the same JSON as the gateway's subscribe:
 * {"type":"subscribe","product_ids":[...],"channels":["level2"]}. Returns the topics, or undefined
 * when the request is not one.
 */
export function parseSubscribe(request: unknown, known: ReadonlySet<string>): string[] | undefined {
  if (typeof request !== 'object' || request === null) return undefined;
  const { type, product_ids: ids } = request as { type?: unknown; product_ids?: unknown };
  if (type !== 'subscribe' || !Array.isArray(ids)) return undefined;
  return ids.filter((id): id is string => typeof id === 'string' && known.has(id));
}

/** The gateway's acknowledgement, for the same request. */
export function subscriptionsAck(topics: readonly string[]) {
  return { type: 'subscriptions', channels: [{ name: 'level2', product_ids: topics }] } as const;
}
