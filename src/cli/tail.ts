import WebSocket from 'ws';
import { MatchbookClient } from '../client/client.js';
import type { TickerMessage } from '../client/protocol.js';
import type { TailArgs } from './tail-args.js';
import { bookLine, renderScreen, tickerLine } from './tail-view.js';

/** Redraws are coalesced to this interval: a busy book would otherwise repaint per update. */
const REDRAW_MS = 100;
const ESC = '\u001b[';

/**
 * `matchbook-gateway tail`: live tickers and one book, redrawn in place on a terminal, plain lines
 * on a pipe. Reconnection is the client's; Ctrl-C (SIGINT), SIGTERM or a closed pipe ends it with
 * exit code 0.
 */
export function runTail(args: TailArgs, out: NodeJS.WriteStream = process.stdout): Promise<void> {
  const client = new MatchbookClient({ url: args.url, WebSocket });
  const tickers = new Map<string, TickerMessage>();
  let note = '';
  for (const product of args.products) client.subscribe('ticker', product);
  client.subscribe('level2', args.bookProduct);
  const book = client.book(args.bookProduct)!;
  const terminal = out.isTTY === true;

  let timer: ReturnType<typeof setTimeout> | undefined;
  const draw = () => {
    timer = undefined;
    const lines = renderScreen({
      url: args.url,
      state: client.state,
      note,
      products: args.products,
      tickers,
      bookProduct: args.bookProduct,
      book: book.view(args.depth),
      depth: args.depth,
    });
    const rows = out.rows ?? lines.length;
    // Home, each line overwritten and cleared to its end, then everything below cleared.
    out.write(
      `${ESC}H${lines
        .slice(0, rows)
        .map((l) => `${l}${ESC}K`)
        .join('\n')}${ESC}J`,
    );
  };
  const schedule = () => {
    if (terminal && !stopped && timer === undefined) timer = setTimeout(draw, REDRAW_MS);
  };
  let stopped = false;
  const line = (text: string) => {
    if (!terminal && !stopped) out.write(`${text}\n`);
  };

  let lastBookLine = '';
  client.on('state', (state) => {
    line(`state ${state}`);
    schedule();
  });
  client.on('disconnected', (e) => {
    note = e.willReconnect
      ? `disconnected (${e.code}${e.reason ? ` ${e.reason}` : ''}), retrying in ${Math.round(e.retryInMs ?? 0)} ms`
      : `disconnected (${e.code}${e.reason ? ` ${e.reason}` : ''}), not retrying`;
    line(note);
    schedule();
  });
  client.on('error', (e) => {
    note = `gateway error: ${e.reason}`;
    line(note);
    schedule();
  });
  client.on('message', (m) => {
    if (m.type !== 'ticker') return;
    tickers.set(m.product_id, m);
    line(tickerLine(m));
    schedule();
  });
  const bookChanged = () => {
    const text = bookLine(args.bookProduct, book.view(1));
    // Only changes of the best levels: a pipe gets a line when the top of the book moves.
    if (text !== lastBookLine) line(text);
    lastBookLine = text;
    schedule();
  };
  client.on('book', bookChanged);
  client.on('stale', bookChanged);

  if (terminal) out.write(`${ESC}?25l${ESC}2J`);
  schedule();
  return new Promise((resolve) => {
    const stop = () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      client.close();
      if (terminal) out.write(`${ESC}?25h\n`);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // A reader that went away (`| head`) ends the tail like a signal, as Unix filters do.
    out.on('error', stop);
  });
}
