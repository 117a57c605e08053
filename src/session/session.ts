import { CLIENT_ERRORS, type ClientError, clientError, encodeClientError } from '../errors/catalogue.js';
import type { Channel } from '../market/types.js';
import {
  type ProductCatalogue,
  parseRequest,
  type RequestLimits,
  type SubscriptionRequest,
} from './requests.js';
import {
  channelsOf,
  countOf,
  holds,
  idsOf,
  NO_SUBSCRIPTIONS,
  type SubscriptionList,
  withoutSubscription,
  withSubscription,
} from './subscription-list.js';

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

/**
 * One client's protocol state: its subscriptions and the replies to its requests. Bounded by
 * construction: a subscription is (known channel, known product), so a client cannot grow it past
 * channels × products.
 */
export class ClientSession {
  /** In the order the client subscribed (the `subscriptions` reply keeps it); see SubscriptionList. */
  private subscriptions: SubscriptionList = NO_SUBSCRIPTIONS;
  private subscribed = false;

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
      const holding = countOf(this.subscriptions) + this.newSubscriptions(request);
      if (holding > this.limits.maxSubscriptions) {
        this.sendError(
          clientError(
            CLIENT_ERRORS.tooManySubscriptions,
            `this would hold ${holding} subscriptions; at most ${this.limits.maxSubscriptions} per connection`,
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
    for (const { channel, ids } of channelsOf(this.subscriptions)) {
      this.observer.subscriptionsChanged(channel, -ids.length);
    }
    this.subscriptions = NO_SUBSCRIPTIONS;
  }

  private newSubscriptions(request: SubscriptionRequest): number {
    const seen = new Set<string>();
    for (const { channel, productIds } of request.channels) {
      for (const id of channel === 'status' ? [''] : productIds) {
        if (!holds(this.subscriptions, channel, id)) seen.add(`${channel}:${id}`);
      }
    }
    return seen.size;
  }

  /** Applies the request's state now; returns the attaches to run after the `subscriptions` reply. */
  private subscribe(request: SubscriptionRequest): Array<() => void> {
    const attaches: Array<() => void> = [];
    this.subscribed = true;
    for (const { channel, productIds } of request.channels) {
      for (const id of channel === 'status' ? [''] : productIds) {
        const before = this.subscriptions;
        this.subscriptions = withSubscription(before, channel, id);
        if (this.subscriptions === before) continue;
        this.observer.subscriptionsChanged(channel, 1);
        attaches.push(() => this.connection.attach(channel, id));
      }
    }
    return attaches;
  }

  private unsubscribe(request: SubscriptionRequest): Array<() => void> {
    for (const { channel, productIds } of request.channels) {
      // No products named: the whole channel goes, as the feed documents.
      const leaving =
        channel === 'status' || productIds.length === 0 ? idsOf(this.subscriptions, channel) : productIds;
      for (const id of leaving) {
        const before = this.subscriptions;
        this.subscriptions = withoutSubscription(before, channel, id);
        if (this.subscriptions === before) continue;
        this.observer.subscriptionsChanged(channel, -1);
        this.connection.detach(channel, id);
      }
    }
    return [];
  }

  private describeSubscriptions(): string {
    const channels = channelsOf(this.subscriptions).map(({ channel, ids }) => ({
      name: channel,
      product_ids: channel === 'status' ? [] : ids,
    }));
    return JSON.stringify({ type: 'subscriptions', channels });
  }

  private sendError(error: ClientError): void {
    this.observer.errorSent(error.spec.code);
    this.connection.sendControl(encodeClientError(error));
  }
}
