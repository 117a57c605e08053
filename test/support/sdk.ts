import { expect } from 'vitest';
import WebSocket from 'ws';
import type { ClientEvents, MatchbookClient } from '../../src/client/client.js';

/**
 * Helpers for tests of the client SDK against a real gateway. The SDK runs from dist/ like the
 * gateway (integration tests run the built code).
 */
export const sdk: typeof import('../../src/client/index.js') = await import(
  new URL('../../dist/src/client/index.js', import.meta.url).href
);

/** The `ws` WebSocket, recording every socket it makes (to stall one, or count attempts). */
export function recordingWebSocket() {
  const sockets: { socket: WebSocket; at: number }[] = [];
  class Recording extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets.push({ socket: this, at: performance.now() });
    }
  }
  return { WebSocket: Recording, sockets };
}

/** Resolves with the next `event` whose payload satisfies `predicate`. */
export function nextEvent<K extends keyof ClientEvents>(
  client: MatchbookClient,
  event: K,
  predicate: (payload: ClientEvents[K]) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${String(event)} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = client.on(event, (payload) => {
      if (!predicate(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

/** Resolves once `condition` holds, checking now and after every event of the client. */
export function until(client: MatchbookClient, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  if (condition()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const offs: (() => void)[] = [];
    const done = (error?: Error) => {
      clearTimeout(timer);
      for (const off of offs) off();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`condition not met within ${timeoutMs} ms`)), timeoutMs);
    for (const event of ['state', 'synced', 'stale', 'book', 'message'] as const) {
      offs.push(client.on(event, () => condition() && done()));
    }
  });
}

type Levels = [string, string][];

/** Every synced read of a product's book, by sequence (the last `keep` of them). */
export function recordBooks(client: MatchbookClient, productId: string, keep = 20_000) {
  const bySequence = new Map<number, string>();
  client.on('book', (book) => {
    if (book.productId !== productId) return;
    const view = book.view();
    if (!view.synced) return;
    bySequence.set(view.sequence, JSON.stringify({ bids: view.bids, asks: view.asks }));
    if (bySequence.size > keep) bySequence.delete(bySequence.keys().next().value!);
  });
  return bySequence;
}

interface RestBook {
  bids: [string, string, number][];
  asks: [string, string, number][];
  sequence: number;
}

/**
 * The client's book equals GET /products/{id}/book?level=2 at the REST book's sequence. A resync
 * snapshot can jump over that sequence; then the next REST book is taken (at most a few times).
 */
export async function expectBookEqualsRest(
  client: MatchbookClient,
  books: Map<number, string>,
  httpUrl: string,
  productId: string,
): Promise<number> {
  for (let round = 0; round < 5; round++) {
    const rest = (await (await fetch(`${httpUrl}/products/${productId}/book?level=2`)).json()) as RestBook;
    const book = client.book(productId)!;
    if (book.sequence < rest.sequence || !book.synced) {
      await nextEvent(client, 'book', (b) => b.productId === productId && b.sequence >= rest.sequence);
    }
    const ours = books.get(rest.sequence);
    if (ours === undefined) continue;
    const levels = (side: RestBook['bids']): Levels => side.map(([p, s]) => [p, s]);
    expect(JSON.parse(ours)).toEqual({ bids: levels(rest.bids), asks: levels(rest.asks) });
    return rest.sequence;
  }
  throw new Error(`the client's ${productId} book never passed through a REST book's sequence`);
}
