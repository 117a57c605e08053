import { CHANNELS, type Channel } from '../market/types.js';

/**
 * One session's subscriptions, in the form every idle connection can afford: a single flat array
 * holding each channel's name followed by its product ids, channels and ids in the order the client
 * subscribed them (`status` holds the empty id), for example
 *
 *   ['level2', 'BTC-USD', 'ETH-USD', 'ticker', 'BTC-USD']
 *
 * One subscription costs 64 bytes this way, against about 340 for a Map of Sets. Names and ids
 * cannot be confused: ids are catalogue products (BASE-QUOTE) or ''. A channel left without ids is
 * dropped, so subscribing to it again puts it last. Lists are immutable: every change returns a new
 * array of exactly the size it needs (changes come from rate-limited requests; holding is what lasts).
 * Searches are linear: a session holds at most the catalogue's products per channel.
 */
export type SubscriptionList = readonly string[];

export const NO_SUBSCRIPTIONS: SubscriptionList = [];

const CHANNEL_NAMES: ReadonlySet<string> = new Set(CHANNELS);

/** Where `channel`'s ids are in `list`: [start, end), or undefined when it holds none. */
function idRange(list: SubscriptionList, channel: Channel): { start: number; end: number } | undefined {
  const at = list.indexOf(channel);
  if (at < 0) return undefined;
  let end = at + 1;
  while (end < list.length && !CHANNEL_NAMES.has(list[end]!)) end++;
  return { start: at + 1, end };
}

function indexOfId(list: SubscriptionList, channel: Channel, id: string): number {
  const range = idRange(list, channel);
  if (!range) return -1;
  const at = list.indexOf(id, range.start);
  return at >= 0 && at < range.end ? at : -1;
}

export function holds(list: SubscriptionList, channel: Channel, id: string): boolean {
  return indexOfId(list, channel, id) >= 0;
}

/** How many (channel, id) subscriptions `list` holds. */
export function countOf(list: SubscriptionList): number {
  let channels = 0;
  for (const entry of list) if (CHANNEL_NAMES.has(entry)) channels++;
  return list.length - channels;
}

/** The ids `channel` holds, in the order they were subscribed. */
export function idsOf(list: SubscriptionList, channel: Channel): string[] {
  const range = idRange(list, channel);
  return range ? list.slice(range.start, range.end) : [];
}

/** `list` with `id` added last to `channel` (the channel last if new); `list` itself if already held. */
export function withSubscription(list: SubscriptionList, channel: Channel, id: string): SubscriptionList {
  const range = idRange(list, channel);
  if (!range) return list.concat([channel, id]);
  if (indexOfId(list, channel, id) >= 0) return list;
  // concat, not spread: it allocates exactly the length it returns.
  return list.slice(0, range.end).concat([id], list.slice(range.end));
}

/** `list` without `channel`'s `id` (and without the channel if that was its last); `list` if not held. */
export function withoutSubscription(list: SubscriptionList, channel: Channel, id: string): SubscriptionList {
  const at = indexOfId(list, channel, id);
  if (at < 0) return list;
  const range = idRange(list, channel)!;
  const from = range.end - range.start === 1 ? at - 1 : at;
  const rest = list.slice(0, from).concat(list.slice(at + 1));
  return rest.length === 0 ? NO_SUBSCRIPTIONS : rest;
}

/** Every channel with its ids, in order. */
export function channelsOf(list: SubscriptionList): Array<{ channel: Channel; ids: string[] }> {
  const channels: Array<{ channel: Channel; ids: string[] }> = [];
  for (const entry of list) {
    if (CHANNEL_NAMES.has(entry)) channels.push({ channel: entry as Channel, ids: [] });
    else channels.at(-1)!.ids.push(entry);
  }
  return channels;
}
