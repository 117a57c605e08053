import type { StaticFile } from './static-assets.js';

/**
 * The REST and readiness endpoints as pure functions of the gateway's state, answered where the
 * hub lives. Shapes follow the Coinbase Exchange REST API.
 */

export interface HttpReply {
  readonly status: number;
  readonly body: string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
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

/** A parsed HTTP request the transport cannot answer by itself: the market state lives with the hub. */
export type HttpQuery =
  | { readonly route: 'products' }
  | {
      readonly route: 'product';
      readonly productId: string;
      readonly resource: string;
      readonly level: string;
    }
  | { readonly route: 'readyz' };

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  304: '304 Not Modified',
  400: '400 Bad Request',
  404: '404 Not Found',
  503: '503 Service Unavailable',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status}`;
}

const json = (status: number, value: unknown): HttpReply => ({ status, body: JSON.stringify(value) });

export const NOT_FOUND: HttpReply = json(404, { message: 'NotFound' });
export const DRAINING: HttpReply = json(503, { status: 'not_ready', reason: 'draining' });

export function healthRoute(healthy: boolean): HttpReply {
  return healthy
    ? json(200, { status: 'ok' })
    : json(503, { status: 'unhealthy', reason: 'a worker thread is stuck' });
}

/** A file of the live page, or 304 when the browser's copy is current. */
export function staticRoute(file: StaticFile | undefined, ifNoneMatch: string): HttpReply {
  if (!file) return NOT_FOUND;
  const headers = { ETag: file.etag, 'Cache-Control': file.cacheControl };
  if (ifNoneMatch === file.etag) return { status: 304, body: '', contentType: file.contentType, headers };
  return { status: 200, body: file.body, contentType: file.contentType, headers };
}

export function answerHttp(query: HttpQuery, views: MarketViews, readiness: Readiness): HttpReply {
  switch (query.route) {
    case 'products':
      return json(200, views.restProducts());
    case 'product':
      return productRoute(views, query.productId, query.resource, query.level);
    case 'readyz': {
      const reason = readiness.notReadyReason();
      return reason === undefined
        ? json(200, { status: 'ready' })
        : json(503, { status: 'not_ready', reason });
    }
  }
}

function productRoute(views: MarketViews, productId: string, resource: string, level: string): HttpReply {
  switch (resource) {
    case '': {
      const product = views.restProduct(productId);
      return product ? json(200, product) : NOT_FOUND;
    }
    case 'book': {
      const parsedLevel = level === '' ? 1 : Number(level);
      if (parsedLevel !== 1 && parsedLevel !== 2) {
        return json(400, { message: `Invalid level ${JSON.stringify(level.slice(0, 16))}: expected 1 or 2` });
      }
      const book = views.restBook(productId, parsedLevel);
      return book ? json(200, book) : NOT_FOUND;
    }
    case 'ticker': {
      const ticker = views.restTicker(productId);
      return ticker ? json(200, ticker) : NOT_FOUND;
    }
    default:
      return NOT_FOUND;
  }
}
