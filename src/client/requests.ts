import type { Channel, SubscriptionRequest } from './protocol.js';

/** A (channel, product) pair as the client keeps it; `status` has the empty product. */
export interface Pair {
  readonly channel: Channel;
  readonly productId: string;
}

/** The gateway's default WS_MAX_PRODUCTS_PER_REQUEST: larger sets are sent in several requests. */
const PRODUCTS_PER_REQUEST = 50;

/** The fewest requests that (un)subscribe `pairs`, each naming at most PRODUCTS_PER_REQUEST products. */
export function requestsFor(type: SubscriptionRequest['type'], pairs: Iterable<Pair>): SubscriptionRequest[] {
  const byChannel = new Map<Channel, string[]>();
  for (const { channel, productId } of pairs) {
    const products = byChannel.get(channel) ?? [];
    if (productId !== '') products.push(productId);
    byChannel.set(channel, products);
  }
  const requests: SubscriptionRequest[] = [];
  let channels: SubscriptionRequest['channels'][number][] = [];
  let named = 0;
  const flush = () => {
    if (channels.length > 0) requests.push({ type, channels });
    channels = [];
    named = 0;
  };
  for (const [name, products] of byChannel) {
    if (products.length === 0) {
      channels.push({ name });
      continue;
    }
    for (let start = 0; start < products.length; start += PRODUCTS_PER_REQUEST) {
      const chunk = products.slice(start, start + PRODUCTS_PER_REQUEST);
      if (named + chunk.length > PRODUCTS_PER_REQUEST) flush();
      channels.push({ name, product_ids: chunk });
      named += chunk.length;
    }
  }
  flush();
  return requests;
}
