import { HTTP_ERRORS } from '../errors/catalogue.js';
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

/**
 * A parsed HTTP request the transport cannot answer by itself: the market state lives with the hub.
 * The REST market-data routes carry the client's address (as the upgrade resolves it) for the
 * REST rate limit, which is decided where they are answered.
 */
export type HttpQuery =
  | { readonly route: 'products'; readonly clientIp: string }
  | {
      readonly route: 'product';
      readonly clientIp: string;
      readonly productId: string;
      readonly resource: string;
      readonly level: string;
    }
  | { readonly route: 'readyz' };

/** The REST rate limit as answerLimited needs it (RestRateLimiter). */
export interface RestLimit {
  take(
    clientIp: string,
    nowMs: number,
  ):
    | { readonly allowed: true }
    | {
        readonly allowed: false;
        readonly reason: 'rate_limited' | 'table_full';
        readonly retryAfterSeconds: number;
      };
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  304: '304 Not Modified',
  400: '400 Bad Request',
  403: '403 Forbidden',
  404: '404 Not Found',
  429: '429 Too Many Requests',
  503: '503 Service Unavailable',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status}`;
}

const json = (status: number, value: unknown): HttpReply => ({ status, body: JSON.stringify(value) });

export const NOT_FOUND: HttpReply = json(404, { message: 'NotFound' });
export const DRAINING: HttpReply = json(503, { status: 'not_ready', reason: 'draining' });
/** /metrics, /healthz or /readyz on PORT through a proxy (see limits/forwarded-request.ts). */
export const PRIVATE_ENDPOINT: HttpReply = json(403, {
  message: HTTP_ERRORS.privateEndpoint.message,
  code: HTTP_ERRORS.privateEndpoint.code,
  reason: 'served to direct requests only, not through a proxy',
});
export const BAD_ADDRESS: HttpReply = json(400, { message: 'unreadable client address' });

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

/**
 * answerHttp behind the REST rate limit: the market-data routes take a token of their client's
 * bucket first (readiness is never limited). Called on the thread that answers REST requests.
 */
export function answerLimited(
  query: HttpQuery,
  views: MarketViews,
  readiness: Readiness,
  limit: RestLimit,
  nowMs: number,
  refused: (reason: 'rate_limited' | 'table_full') => void,
): HttpReply {
  if (query.route !== 'readyz') {
    const decision = limit.take(query.clientIp, nowMs);
    if (!decision.allowed) {
      refused(decision.reason);
      const spec = decision.reason === 'rate_limited' ? HTTP_ERRORS.rateLimited : HTTP_ERRORS.tableFull;
      return {
        status: decision.reason === 'rate_limited' ? 429 : 503,
        body: JSON.stringify({ message: spec.message, code: spec.code }),
        headers: { 'Retry-After': String(decision.retryAfterSeconds) },
      };
    }
  }
  return answerHttp(query, views, readiness);
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
