import type { Channel, ChannelMessages } from './protocol.js';

/**
 * What a subscription's iterator does when its consumer falls `bufferSize` messages behind:
 * - `book` (level2, level2_batch): the buffered book messages are replaced by one snapshot of the
 *   client's current book (or by nothing while the book is not synced: a resync snapshot follows);
 * - `latest` (ticker, ticker_batch, heartbeat, status): the oldest message is dropped, since each
 *   one supersedes the one before;
 * - `fail` (matches): the iterator ends with a SubscriptionOverflowError, so no trade is lost silently.
 */
export type OverflowPolicy = 'book' | 'latest' | 'fail';

export function overflowPolicyOf(channel: Channel): OverflowPolicy {
  if (channel === 'level2' || channel === 'level2_batch') return 'book';
  return channel === 'matches' ? 'fail' : 'latest';
}

export class SubscriptionOverflowError extends Error {
  constructor(channel: Channel, productId: string | undefined, bufferSize: number) {
    super(`${channel}${productId ? ` ${productId}` : ''}: the consumer fell ${bufferSize} messages behind`);
    this.name = 'SubscriptionOverflowError';
  }
}

/** What a subscription needs from its client. */
export interface SubscriptionOwner {
  release(subscription: Subscription<Channel>): void;
  /** A snapshot of the current book of `productId`, if it is synced. */
  bookSnapshot(productId: string): ChannelMessages['level2'] | undefined;
}

interface Waiting<M> {
  resolve(result: IteratorResult<M>): void;
  reject(error: Error): void;
}

/**
 * One (channel, product) the client keeps subscribed, across reconnections, until `unsubscribe()`.
 * It is also an AsyncIterable of that channel's messages for the product; messages are buffered
 * only once iteration has started, so a subscription used only through events costs nothing.
 */
export class Subscription<C extends Channel> implements AsyncIterable<ChannelMessages[C]> {
  private buffer: ChannelMessages[C][] = [];
  private iterating = false;
  private waiting: Waiting<ChannelMessages[C]> | undefined;
  private ended: { error?: Error } | undefined;

  constructor(
    readonly channel: C,
    /** Undefined for `status`, which has no products. */
    readonly productId: string | undefined,
    private readonly owner: SubscriptionOwner,
    private readonly bufferSize: number,
  ) {}

  get active(): boolean {
    return this.ended === undefined;
  }

  unsubscribe(): void {
    if (this.ended) return;
    this.end();
    this.owner.release(this as unknown as Subscription<Channel>);
  }

  /** Called by the client for every message of this subscription's channel and product. */
  deliver(message: ChannelMessages[C]): void {
    if (this.ended || !this.iterating) return;
    if (this.waiting) {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting.resolve({ value: message, done: false });
      return;
    }
    if (this.buffer.length < this.bufferSize) {
      this.buffer.push(message);
      return;
    }
    switch (overflowPolicyOf(this.channel)) {
      case 'book': {
        const snapshot = this.productId ? this.owner.bookSnapshot(this.productId) : undefined;
        this.buffer = snapshot ? [snapshot as ChannelMessages[C]] : [];
        return;
      }
      case 'latest':
        this.buffer.shift();
        this.buffer.push(message);
        return;
      case 'fail':
        this.end(new SubscriptionOverflowError(this.channel, this.productId, this.bufferSize));
    }
  }

  /** Ends iteration: normally (unsubscribe, client closed) or with an error. */
  end(error?: Error): void {
    if (this.ended) return;
    this.ended = error ? { error } : {};
    const waiting = this.waiting;
    this.waiting = undefined;
    if (!waiting) return;
    if (error) {
      this.buffer = [];
      waiting.reject(error);
    } else {
      waiting.resolve({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<ChannelMessages[C]> {
    if (this.iterating) throw new Error('a subscription can be iterated once');
    this.iterating = true;
    return {
      next: () => {
        const message = this.buffer.shift();
        if (message !== undefined) return Promise.resolve({ value: message, done: false });
        if (this.ended) {
          if (this.ended.error) {
            const error = this.ended.error;
            this.ended = {};
            return Promise.reject(error);
          }
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => {
          this.waiting = { resolve, reject };
        });
      },
      return: () => {
        this.unsubscribe();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
