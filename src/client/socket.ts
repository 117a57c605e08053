/**
 * The WebSocket the client drives: the browser's standard WebSocket, Node's, or the `ws` package's
 * (all three have this shape). Injected, so the SDK imports no platform module.
 */
/**
 * A handler property checked bivariantly, as the DOM's own handler types are, so each platform's
 * richer event types are accepted.
 */
type Handler<E> = { bivariant(event: E): void }['bivariant'] | null;

export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown>;
  onmessage: Handler<{ readonly data: unknown }>;
  onclose: Handler<{ readonly code: number; readonly reason: string }>;
  onerror: Handler<unknown>;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The upgrade's HTTP response, as the `ws` package shows a refused one. */
interface RefusedUpgrade {
  readonly statusCode?: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/**
 * What the `ws` package shows beyond the standard API: a refused upgrade's response (for
 * Retry-After), protocol pings and pongs (liveness), and terminate() for a link that is frozen.
 */
interface NodeExtras {
  on(event: 'unexpected-response', listener: (request: unknown, response: RefusedUpgrade) => void): void;
  on(event: 'ping' | 'pong', listener: () => void): void;
  ping(): void;
  terminate(): void;
}

function nodeExtras(socket: WebSocketLike): NodeExtras | undefined {
  const s = socket as Partial<NodeExtras>;
  return typeof s.on === 'function' && typeof s.terminate === 'function' && typeof s.ping === 'function'
    ? (s as NodeExtras)
    : undefined;
}

/** Retry-After in seconds (the gateway's form) or as an HTTP date; undefined if absent or unreadable. */
export function retryAfterMs(header: string | undefined, nowMs: number): number | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

export interface SocketHooks {
  /** A refused upgrade's status and Retry-After, where the platform exposes them. */
  refused(status: number, retryAfterMs: number | undefined): void;
  /** A protocol ping or pong arrived. */
  alive(): void;
}

/** Hooks the platform-specific extras, where present; the standard API needs nothing more. */
export function attachExtras(socket: WebSocketLike, hooks: SocketHooks): void {
  const extras = nodeExtras(socket);
  if (!extras) return;
  extras.on('unexpected-response', (_request, response) => {
    const header = response.headers['retry-after'];
    hooks.refused(
      response.statusCode ?? 0,
      retryAfterMs(Array.isArray(header) ? header[0] : header, Date.now()),
    );
    // With a listener, ws leaves the handshake to us: abort it, which closes the socket (1006).
    extras.terminate();
  });
  extras.on('ping', () => hooks.alive());
  extras.on('pong', () => hooks.alive());
}

/** Whether the platform can send protocol pings (browsers cannot). */
export function canPing(socket: WebSocketLike): boolean {
  return nodeExtras(socket) !== undefined;
}

/** Sends a protocol ping where the platform can. */
export function ping(socket: WebSocketLike): void {
  nodeExtras(socket)?.ping();
}

/** Closes now: terminate() where available, so a frozen link does not wait for a close handshake. */
export function abort(socket: WebSocketLike): void {
  const extras = nodeExtras(socket);
  if (extras) extras.terminate();
  else socket.close(4000, 'client watchdog');
}
