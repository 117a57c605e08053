/**
 * The REST and health endpoints as pure functions of the gateway's state: the transport adapts
 * them to uWebSockets.js. Shapes follow the Coinbase Exchange REST API.
 */

export interface HttpReply {
  readonly status: number;
  readonly body: string;
  readonly contentType?: string;
}

export interface MarketViews {
  restProducts(): unknown[];
  restProduct(productId: string): unknown | undefined;
  restBook(productId: string, level: 1 | 2): unknown | undefined;
  restTicker(productId: string): unknown | undefined;
}

export interface Readiness {
  /** Undefined when ready; otherwise why not. */
  notReadyReason(): string | undefined;
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  400: '400 Bad Request',
  404: '404 Not Found',
  503: '503 Service Unavailable',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status}`;
}

const json = (status: number, value: unknown): HttpReply => ({ status, body: JSON.stringify(value) });
const notFound = (): HttpReply => json(404, { message: 'NotFound' });

export function productRoute(
  views: MarketViews,
  productId: string,
  resource: string,
  level: string,
): HttpReply {
  switch (resource) {
    case '': {
      const product = views.restProduct(productId);
      return product ? json(200, product) : notFound();
    }
    case 'book': {
      const parsedLevel = level === '' ? 1 : Number(level);
      if (parsedLevel !== 1 && parsedLevel !== 2) {
        return json(400, { message: `Invalid level ${JSON.stringify(level)}: expected 1 or 2` });
      }
      const book = views.restBook(productId, parsedLevel);
      return book ? json(200, book) : notFound();
    }
    case 'ticker': {
      const ticker = views.restTicker(productId);
      return ticker ? json(200, ticker) : notFound();
    }
    default:
      return notFound();
  }
}

export function productsRoute(views: MarketViews): HttpReply {
  return json(200, views.restProducts());
}

export function readinessRoute(readiness: Readiness): HttpReply {
  const reason = readiness.notReadyReason();
  return reason === undefined ? json(200, { status: 'ready' }) : json(503, { status: 'not_ready', reason });
}

export function healthRoute(): HttpReply {
  return json(200, { status: 'ok' });
}

export { notFound };
