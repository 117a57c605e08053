import type { ClientState } from '../client/client.js';
import type { BookView } from '../client/order-book.js';
import type { TickerMessage } from '../client/protocol.js';

/** What `tail` shows, as plain data; rendering is a pure function of it. */
export interface TailModel {
  readonly url: string;
  readonly state: ClientState;
  readonly note: string;
  readonly products: readonly string[];
  readonly tickers: ReadonlyMap<string, TickerMessage>;
  readonly bookProduct: string;
  readonly book: BookView;
  readonly depth: number;
}

const pad = (text: string, width: number) => text.padStart(width);

/** The full screen for a terminal: header, one ticker row per product, the book's top levels. */
export function renderScreen(model: TailModel): string[] {
  const lines = [
    `matchbook-gateway tail  ${model.url}  [${model.state}]${model.note ? `  ${model.note}` : ''}`,
    '',
  ];
  lines.push(
    `${'product'.padEnd(10)}${pad('price', 14)}${pad('bid', 14)}${pad('ask', 14)}${pad('24h volume', 16)}`,
  );
  for (const product of model.products) {
    const t = model.tickers.get(product);
    lines.push(
      `${product.padEnd(10)}${pad(t?.price ?? '-', 14)}${pad(t?.best_bid ?? '-', 14)}${pad(t?.best_ask ?? '-', 14)}${pad(t?.volume_24h ?? '-', 16)}`,
    );
  }
  lines.push('');
  const view = model.book;
  if (!view.synced) {
    lines.push(`${model.bookProduct} book: not synced (${view.reason})`);
    return lines;
  }
  lines.push(`${model.bookProduct} book at sequence ${view.sequence}`);
  lines.push(`${pad('bid size', 16)}${pad('bid', 14)}  ${'ask'.padEnd(14)}${'ask size'.padEnd(16)}`);
  for (let i = 0; i < model.depth; i++) {
    const bid = view.bids[i];
    const ask = view.asks[i];
    if (!bid && !ask) break;
    lines.push(
      `${pad(bid?.[1] ?? '', 16)}${pad(bid?.[0] ?? '', 14)}  ${(ask?.[0] ?? '').padEnd(14)}${(ask?.[1] ?? '').padEnd(16)}`,
    );
  }
  return lines;
}

/** One line per ticker, for pipes (`| grep`). */
export function tickerLine(t: TickerMessage): string {
  return `ticker ${t.product_id} price=${t.price} bid=${t.best_bid ?? '-'} ask=${t.best_ask ?? '-'} side=${t.side} size=${t.last_size} time=${t.time}`;
}

/** The book's best levels in one line, for pipes; undefined while not synced. */
export function bookLine(product: string, view: BookView): string {
  if (!view.synced) return `book ${product} stale reason=${view.reason}`;
  const [bid] = view.bids;
  const [ask] = view.asks;
  return `book ${product} sequence=${view.sequence} bid=${bid ? `${bid[0]}x${bid[1]}` : '-'} ask=${ask ? `${ask[0]}x${ask[1]}` : '-'}`;
}
