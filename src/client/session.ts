import { CLIENT_ERRORS, type ClientError, clientError, encodeClientError } from '../errors/catalogue.js';
import type { Channel } from '../market/types.js';
import {
  type ProductCatalogue,
  parseRequest,
  type RequestLimits,
  type SubscriptionRequest,
} from './requests.js';

export interface SessionLimits extends RequestLimits {
  /** (channel, product) pairs one connection may hold. */
  readonly maxSubscriptions: number;
}

/** What a session needs from its socket; implemented by the transport. */
export interface ClientConnection {
  /** Sends one message to this client alone. */
  sendControl(payload: string): void;
  /** Starts the live stream of one channel and product: initial messages, then every update. */
  attach(channel: Channel, productId: string): void;
  detach(channel: Channel, productId: string): void;
}

export interface SessionObserver {
  subscriptionsChanged(channel: Channel, delta: number): void;
  errorSent(code: string): void;
}

/** One channel a client is subscribed to. */
interface ChannelSubscriptions {
  readonly channel: Channel;
  /** In the order the client subscribed. `status` has no products: its one topic is held as ''. */
  productIds: string[];
}

/**
 * One client's protocol state: its subscriptions and the replies to its requests. Bounded by
 * construction: a subscription is (known channel, known product), so a client cannot grow it past
 * channels × products.
 */
export class ClientSession {
  /**
   * Channels in the order the client subscribed (the `subscriptions` reply keeps it); a channel
   * left empty is dropped, so subscribing to it again puts it last. Undefined before the first
   * subscribe. Plain arrays searched linearly, not a Map of Sets: a connection holds a handful of
   * subscriptions (never more than the catalogue's products per channel), and every connection pays
   * for this representation while it sits idle. Arrays grow by concat(), which allocates exactly
   * what it needs, where push() would reserve room for 16 more entries.
   */
  private channels: ChannelSubscriptions[] | undefined = undefined;
  private subscribed = false;
  private count = 0;

  constructor(
    private readonly connection: ClientConnection,
    private readonly catalogue: ProductCatalogue,
    private readonly observer: SessionObserver,
    private readonly limits: SessionLimits,
  ) {}

  /** True once any subscribe succeeded (the subscribe deadline no longer applies). */
  get hasSubscribed(): boolean {
    return this.subscribed;
  }

  handleText(text: string): void {
    const request = parseRequest(text, this.catalogue, this.limits);
    if ('spec' in request) {
      this.sendError(request);
      return;
    }
    // One error per request at most: a request over the subscription limit is refused whole.
    if (request.type === 'subscribe' && request.channels.length > 0) {
      const adding = this.newSubscriptions(request);
      if (this.count + adding > this.limits.maxSubscriptions) {
        this.sendError(
          clientError(
            CLIENT_ERRORS.tooManySubscriptions,
            `this would hold ${this.count + adding} subscriptions; at most ${this.limits.maxSubscriptions} per connection`,
          ),
        );
        return;
      }
    }
    const [firstProblem] = request.problems;
    if (firstProblem) this.sendError(firstProblem);
    if (request.channels.length === 0) return;
    const changes = request.type === 'subscribe' ? this.subscribe(request) : this.unsubscribe(request);
    this.connection.sendControl(this.describeSubscriptions());
    for (const change of changes) change();
  }

  handleBinary(): void {
    this.sendError(
      clientError(CLIENT_ERRORS.binaryFrame, 'send subscribe/unsubscribe requests as JSON text frames'),
    );
  }

  /** Releases the session's subscriptions from the metrics; the transport drops the topics itself. */
  dispose(): void {
    for (const { channel, productIds } of this.channels ?? []) {
      this.observer.subscriptionsChanged(channel, -productIds.length);
    }
    this.channels = undefined;
    this.count = 0;
  }

  private subscriptionsOf(channel: Channel): ChannelSubscriptions | undefined {
    return this.channels?.find((subscriptions) => subscriptions.channel === channel);
  }

  private newSubscriptions(request: SubscriptionRequest): number {
    const seen = new Set<string>();
    for (const { channel, productIds } of request.channels) {
      const held = this.subscriptionsOf(channel)?.productIds;
      for (const id of channel === 'status' ? [''] : productIds) {
        if (!held?.includes(id)) seen.add(`${channel}:${id}`);
      }
    }
    return seen.size;
  }

  /** Applies the request's state now; returns the attaches to run after the `subscriptions` reply. */
  private subscribe(request: SubscriptionRequest): Array<() => void> {
    const attaches: Array<() => void> = [];
    this.subscribed = true;
    for (const { channel, productIds } of request.channels) {
      let held = this.subscriptionsOf(channel);
      for (const id of channel === 'status' ? [''] : productIds) {
        if (held?.productIds.includes(id)) continue;
        if (held) {
          held.productIds = held.productIds.concat([id]);
        } else {
          held = { channel, productIds: [id] };
          this.channels = (this.channels ?? []).concat([held]);
        }
        this.count++;
        this.observer.subscriptionsChanged(channel, 1);
        attaches.push(() => this.connection.attach(channel, id));
      }
    }
    return attaches;
  }

  private unsubscribe(request: SubscriptionRequest): Array<() => void> {
    for (const { channel, productIds } of request.channels) {
      const held = this.subscriptionsOf(channel);
      if (!held) continue;
      // No products named: the whole channel goes, as the feed documents.
      const leaving = channel === 'status' || productIds.length === 0 ? [...held.productIds] : productIds;
      for (const id of leaving) {
        const at = held.productIds.indexOf(id);
        if (at < 0) continue;
        held.productIds.splice(at, 1);
        this.count--;
        this.observer.subscriptionsChanged(channel, -1);
        this.connection.detach(channel, id);
      }
      if (held.productIds.length === 0) this.dropChannel(held);
    }
    return [];
  }

  private dropChannel(emptied: ChannelSubscriptions): void {
    const channels = this.channels!;
    channels.splice(channels.indexOf(emptied), 1);
    if (channels.length === 0) this.channels = undefined;
  }

  private describeSubscriptions(): string {
    const channels = (this.channels ?? []).map(({ channel, productIds }) => ({
      name: channel,
      product_ids: channel === 'status' ? [] : productIds,
    }));
    return JSON.stringify({ type: 'subscriptions', channels });
  }

  private sendError(error: ClientError): void {
    this.observer.errorSent(error.spec.code);
    this.connection.sendControl(encodeClientError(error));
  }
}
