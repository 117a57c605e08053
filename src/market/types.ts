/** Domain types shared by the feeds, the hub and the client protocol. */

export type Side = 'buy' | 'sell';

/** [price, size, number of orders]: price and size as canonical decimal strings. */
export type PriceLevel = readonly [price: string, size: string, orders: number];

/** [side, price, new size, new number of orders]: absolute values; a zero size removes the level. */
export type BookChange = readonly [side: Side, price: string, size: string, orders: number];

export const CHANNELS = [
  'heartbeat',
  'status',
  'ticker',
  'ticker_batch',
  'level2',
  'level2_batch',
  'matches',
] as const;
export type Channel = (typeof CHANNELS)[number];

/** Channel names a client may subscribe with: ours, plus the feed's old names for the batch channels. */
const CHANNEL_ALIASES: ReadonlyMap<string, Channel> = new Map<string, Channel>([
  ...CHANNELS.map((c) => [c, c] as const),
  ['ticker_1000', 'ticker_batch'],
  ['level2_50', 'level2_batch'],
]);

export function channelNamed(name: string): Channel | undefined {
  return CHANNEL_ALIASES.get(name);
}

/** The uWS topic of one product on one channel; `status` has a single topic. */
export function topicOf(channel: Channel, productId: string): string {
  return channel === 'status' ? 'status' : `${channel}:${productId}`;
}
