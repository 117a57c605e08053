import { MatchbookClient } from '../client/client.js';
import type { MatchMessage, TickerMessage } from '../client/protocol.js';
import type { Subscription } from '../client/subscription.js';
import { drawDepth } from './depth-chart.js';

/**
 * The live page: prices of every product, the depth of one, its last trades and the connection's
 * state, over the SDK. Everything is drawn from the client's state; the book is drawn only while
 * it is synced, so a stale book is never shown as current.
 */

const TRADES_SHOWN = 20;

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const connection = element<HTMLSpanElement>('connection');
const bookState = element<HTMLSpanElement>('book-state');
const select = element<HTMLSelectElement>('product');
const canvas = element<HTMLCanvasElement>('depth');
const prices = element<HTMLTableElement>('prices').tBodies[0]!;
const trades = element<HTMLTableElement>('trades').tBodies[0]!;

function cell(row: HTMLTableRowElement, text: string, className = ''): void {
  const td = row.insertCell();
  td.textContent = text;
  td.className = className;
}

function setIndicator(span: HTMLSpanElement, state: string, text = state): void {
  span.dataset.state = state;
  span.textContent = text;
}

async function start(): Promise<void> {
  const products = ((await (await fetch('/products')).json()) as { id: string }[]).map((p) => p.id);
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/`;
  const client = new MatchbookClient({ url });
  const rows = new Map<string, HTMLTableRowElement>();
  for (const product of products) {
    const row = prices.insertRow();
    row.dataset.product = product;
    for (const text of [product, '-', '-', '-', '-']) cell(row, text);
    rows.set(product, row);
    client.subscribe('ticker', product);
    select.add(new Option(product, product));
  }

  let chosen: { product: string; book: Subscription<'level2'>; matches: Subscription<'matches'> } | undefined;
  const choose = (product: string) => {
    chosen?.book.unsubscribe();
    chosen?.matches.unsubscribe();
    trades.replaceChildren();
    chosen = {
      product,
      book: client.subscribe('level2', product),
      matches: client.subscribe('matches', product),
    };
    setIndicator(bookState, 'stale', 'waiting for the book');
    redraw();
  };
  select.addEventListener('change', () => choose(select.value));

  let frame = 0;
  const redraw = () => {
    if (frame || !chosen) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      const view = client.book(chosen!.product)?.view() ?? { synced: false, reason: 'awaiting_snapshot' };
      drawDepth(canvas, view);
      canvas.dataset.sequence = view.synced ? String(view.sequence) : '';
    });
  };

  client.on('state', (state) => setIndicator(connection, state));
  client.on('stale', (e) => {
    if (e.product === chosen?.product) setIndicator(bookState, 'stale', `stale: ${e.reason}`);
    redraw();
  });
  client.on('synced', (e) => {
    if (e.product === chosen?.product) setIndicator(bookState, 'synced');
  });
  client.on('book', redraw);
  client.on('message', (m) => {
    if (m.type === 'ticker') showTicker(rows.get(m.product_id), m);
    if ((m.type === 'match' || m.type === 'last_match') && m.product_id === chosen?.product) showTrade(m);
  });
  setIndicator(connection, client.state);
  choose(products[0]!);
}

function showTicker(row: HTMLTableRowElement | undefined, t: TickerMessage): void {
  if (!row) return;
  const previous = Number(row.cells[1]!.textContent);
  const direction = Number(t.price) >= previous ? 'up' : 'down';
  const values = [t.price, t.best_bid ?? '-', t.best_ask ?? '-', t.volume_24h];
  values.forEach((text, i) => {
    const td = row.cells[i + 1]!;
    td.textContent = text;
    td.className = i === 0 ? direction : '';
  });
}

function showTrade(m: MatchMessage): void {
  const row = trades.insertRow(0);
  cell(row, m.time.slice(11, 23));
  // The match's side is the maker's: a sell maker means the taker bought.
  cell(row, m.side === 'sell' ? 'buy' : 'sell', m.side === 'sell' ? 'up' : 'down');
  cell(row, m.price);
  cell(row, m.size);
  while (trades.rows.length > TRADES_SHOWN) trades.deleteRow(-1);
}

start().catch((error: unknown) => setIndicator(connection, 'closed', `failed: ${(error as Error).message}`));
