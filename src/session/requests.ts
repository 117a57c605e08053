import { PRODUCT_ID_PATTERN } from '../config/products.js';
import { CLIENT_ERRORS, type ClientError, clientError } from '../errors/catalogue.js';
import { type Channel, channelNamed } from '../market/types.js';

/**
 * Parses a client's text frame into a subscription request, or the specific error it deserves.
 * Pure: no state, no I/O, so it can be driven with arbitrary input in tests.
 */

export interface ChannelRequest {
  readonly channel: Channel;
  /** Empty: no products named (for unsubscribe, "all products of this channel"). */
  readonly productIds: readonly string[];
}

export interface SubscriptionRequest {
  readonly type: 'subscribe' | 'unsubscribe';
  readonly channels: readonly ChannelRequest[];
  /** Problems with individual products or channels; the valid rest of the request still applies. */
  readonly problems: readonly ClientError[];
}

export interface ProductCatalogue {
  hasProduct(productId: string): boolean;
}

const MAX_PRODUCT_ID_LENGTH = 21;

export interface RequestLimits {
  /** Product ids one request may name, root and per channel together. */
  readonly maxProductsPerRequest: number;
}

const MAX_CHANNEL_ENTRIES = 32;

export function parseRequest(
  text: string,
  catalogue: ProductCatalogue,
  limits: RequestLimits,
): SubscriptionRequest | ClientError {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch (error) {
    return clientError(
      CLIENT_ERRORS.malformedJson,
      `message is not valid JSON: ${truncate((error as Error).message)}`,
    );
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    return clientError(CLIENT_ERRORS.notAnObject, `expected a JSON object, got ${describe(message)}`);
  }
  const fields = message as Record<string, unknown>;
  const type = Object.hasOwn(fields, 'type') ? fields.type : undefined;
  if (type !== 'subscribe' && type !== 'unsubscribe') {
    return clientError(
      CLIENT_ERRORS.unknownType,
      `type ${describe(type)} is not supported: expected "subscribe" or "unsubscribe"`,
    );
  }
  const failure = type === 'subscribe' ? 'Failed to subscribe' : 'Failed to unsubscribe';
  const fail = (spec: (typeof CLIENT_ERRORS)[keyof typeof CLIENT_ERRORS], reason: string): ClientError =>
    clientError({ code: spec.code, message: failure }, reason);

  const rootProducts = Object.hasOwn(fields, 'product_ids') ? fields.product_ids : undefined;
  if (rootProducts !== undefined && !isStringArray(rootProducts)) {
    return fail(CLIENT_ERRORS.invalidField, 'product_ids must be an array of strings');
  }
  const channels = Object.hasOwn(fields, 'channels') ? fields.channels : undefined;
  if (channels === undefined || (Array.isArray(channels) && channels.length === 0)) {
    return fail(CLIENT_ERRORS.emptySubscription, 'No channels provided');
  }
  if (!Array.isArray(channels)) return fail(CLIENT_ERRORS.invalidField, 'channels must be an array');
  if (channels.length > MAX_CHANNEL_ENTRIES) {
    return fail(
      CLIENT_ERRORS.invalidField,
      `channels has ${channels.length} entries; at most ${MAX_CHANNEL_ENTRIES}`,
    );
  }
  // Counted before any product is looked at, so an oversized request costs nothing more.
  const named = countNamedProducts(rootProducts, channels);
  if (named > limits.maxProductsPerRequest) {
    return fail(
      CLIENT_ERRORS.tooManyProducts,
      `the request names ${named} product ids; at most ${limits.maxProductsPerRequest} per request`,
    );
  }

  const problems: ClientError[] = [];
  const validRootProducts = keepValidProducts(rootProducts ?? [], catalogue, problems, fail);
  const requests: ChannelRequest[] = [];
  for (const entry of channels) {
    let name: unknown = entry;
    let own: readonly string[] = [];
    let ownNamed = false;
    if (typeof entry === 'object' && entry !== null && !Array.isArray(entry)) {
      const item = entry as Record<string, unknown>;
      name = Object.hasOwn(item, 'name') ? item.name : undefined;
      const listed = Object.hasOwn(item, 'product_ids') ? item.product_ids : undefined;
      if (listed !== undefined && !isStringArray(listed)) {
        problems.push(
          fail(
            CLIENT_ERRORS.invalidField,
            `product_ids of channel ${describe(name)} must be an array of strings`,
          ),
        );
        continue;
      }
      own = keepValidProducts(listed ?? [], catalogue, problems, fail);
      ownNamed = (listed?.length ?? 0) > 0;
    }
    const channel = typeof name === 'string' ? channelNamed(name) : undefined;
    if (!channel) {
      problems.push(
        fail(
          CLIENT_ERRORS.unknownChannel,
          `${truncate(typeof name === 'string' ? name : describe(name))} is not a valid channel`,
        ),
      );
      continue;
    }
    // The feed adds the root product_ids to every channel, including those listing their own.
    const productIds = channel === 'status' ? [] : [...new Set([...own, ...validRootProducts])];
    const named = (rootProducts?.length ?? 0) > 0 || ownNamed;
    // Unsubscribing from named products that were all invalid must not mean "every product".
    if (type === 'unsubscribe' && channel !== 'status' && named && productIds.length === 0) continue;
    if (type === 'subscribe' && channel !== 'status' && productIds.length === 0) {
      problems.push(
        fail(
          CLIENT_ERRORS.emptySubscription,
          `You need to specify at least one product ID for channel ${channel}`,
        ),
      );
      continue;
    }
    requests.push({ channel, productIds });
  }
  return { type, channels: requests, problems };
}

function keepValidProducts(
  ids: readonly string[],
  catalogue: ProductCatalogue,
  problems: ClientError[],
  fail: (spec: (typeof CLIENT_ERRORS)[keyof typeof CLIENT_ERRORS], reason: string) => ClientError,
): string[] {
  const valid: string[] = [];
  for (const id of ids) {
    // Shape before lookup: nothing the client sends is used as a key until it looks like a product id.
    if (id.length > MAX_PRODUCT_ID_LENGTH || !PRODUCT_ID_PATTERN.test(id)) {
      problems.push(
        fail(CLIENT_ERRORS.malformedProductId, `${truncate(JSON.stringify(id))} is not a valid product id`),
      );
    } else if (!catalogue.hasProduct(id)) {
      problems.push(fail(CLIENT_ERRORS.unknownProduct, `${id} is not a valid product`));
    } else {
      valid.push(id);
    }
  }
  return valid;
}

function countNamedProducts(root: readonly string[] | undefined, channels: readonly unknown[]): number {
  let count = root?.length ?? 0;
  for (const entry of channels) {
    if (typeof entry !== 'object' || entry === null || !Object.hasOwn(entry, 'product_ids')) continue;
    const listed = (entry as { product_ids: unknown }).product_ids;
    if (Array.isArray(listed)) count += listed.length;
  }
  return count;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return truncate(JSON.stringify(value));
  if (typeof value === 'object') return 'an object';
  return typeof value === 'undefined' ? 'missing' : String(value);
}

/** Client text quoted in a `reason` is at most this long (docs/protocol.md, Errors). */
export const MAX_QUOTED_CHARS = 64;

/** Keeps client-controlled text in error messages short: the first characters and '...'. */
function truncate(text: string): string {
  return text.length > MAX_QUOTED_CHARS ? `${text.slice(0, MAX_QUOTED_CHARS - 3)}...` : text;
}
