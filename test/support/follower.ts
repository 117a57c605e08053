import { expect } from 'vitest';
import { BookReplica } from './book-replica.js';
import { type Message, TestClient } from './ws-client.js';

const AWAIT_MS = 20_000;

/**
 * A level2 client of every product, its books rebuilt from what it receives, as a Coinbase client
 * does. It checks what the protocol promises on every message: a client-visible sequence never
 * goes backwards, and an l2update follows the message before it (every event changes the book);
 * anything else has to come as a fresh snapshot.
 */
export class Follower {
  readonly books: Map<string, BookReplica>;
  readonly snapshots: Message[] = [];
  /** performance.now() at which each of `snapshots` arrived. */
  readonly snapshotTimes: number[] = [];
  /** Every snapshot and l2update as received (re-serialised in received key order), by type, product and sequence. */
  readonly texts = new Map<string, string>();
  /** l2updates that did not follow the book's sequence, as "product: expected → got". */
  readonly gaps: string[] = [];

  private constructor(
    readonly client: TestClient,
    readonly products: readonly string[],
  ) {
    this.books = new Map(products.map((id) => [id, new BookReplica()]));
  }

  /**
   * Subscribes to level2 of `products` at `wsUrl` and waits for every product's first snapshot.
   * The client is added to `track` at once, for the test's cleanup to close it whatever happens.
   */
  static async on(
    wsUrl: string,
    products: readonly string[],
    track: TestClient[],
    options: { localAddress?: string } = {},
  ): Promise<Follower> {
    const client = await TestClient.connect(wsUrl, options);
    track.push(client);
    client.subscribe(['level2'], [...products]);
    const follower = new Follower(client, products);
    for (const id of products) await follower.until(() => follower.book(id).sequence > 0);
    return follower;
  }

  book(productId: string): BookReplica {
    return this.books.get(productId)!;
  }

  /** Applies messages as they arrive until `done` holds. */
  async until(done: () => boolean, timeoutMs = AWAIT_MS): Promise<void> {
    if (done()) return;
    await this.client.next((m) => {
      const book = this.books.get(m.product_id as string);
      if (!book) return false;
      if (m.type === 'snapshot') {
        this.snapshots.push(m);
        this.snapshotTimes.push(performance.now());
      }
      this.texts.set(`${m.type} ${m.product_id} ${m.sequence}`, JSON.stringify(m));
      const before = book.sequence;
      if (m.type === 'l2update' && before > 0 && m.sequence !== before + 1)
        this.gaps.push(`${m.product_id}: ${before + 1} → ${m.sequence}`);
      book.apply(m);
      // A client-visible sequence never goes backwards.
      expect(book.sequence).toBeGreaterThanOrEqual(before);
      return done();
    }, timeoutMs);
  }

  /** Waits for a fresh snapshot of every product, after the ones already seen. */
  async freshSnapshots(): Promise<Message[]> {
    const seen = this.snapshots.length;
    const fresh = () => this.snapshots.slice(seen);
    await this.until(() => this.products.every((id) => fresh().some((s) => s.product_id === id)));
    return fresh();
  }
}
