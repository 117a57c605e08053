import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type HttpReply, NOT_FOUND } from '../server/http-routes.js';

/** The answers the admin listener serves, declared by it: the same as PORT's for these paths. */
export interface AdminRoutes {
  healthz(): HttpReply;
  readyz(): HttpReply;
  metrics(): Promise<HttpReply>;
}

/**
 * Bounds what the admin listener may hold of the descriptor reserve (a probe and a scrape need a
 * few); past it Node closes new connections at once.
 */
const MAX_CONNECTIONS = 32;
/** A connection that has not sent its request by then is closed, so silent peers give their descriptors back. */
const REQUEST_TIMEOUT_MS = 5_000;
const UNAVAILABLE: HttpReply = { status: 503, body: '{"message":"unavailable"}' };

/**
 * ADMIN_PORT: /healthz, /readyz and /metrics on a node:http listener of the main thread, for the
 * kubelet and Prometheus. It has its own accept queue, so silent connections piling up on PORT do
 * not delay it, and libuv copes with EMFILE where uSockets spins.
 */
export class AdminServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async listen(
    host: string,
    port: number,
    routes: AdminRoutes,
    failed: (error: unknown) => void,
  ): Promise<AdminServer> {
    const server = createServer(
      { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS },
      (req, res) => answer(req, res, routes, failed),
    );
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      const refused = (error: Error) =>
        reject(new Error(`cannot listen on ${host}:${port} for ADMIN_PORT (${error.message})`));
      server.once('error', refused);
      server.listen(port, host, () => {
        server.off('error', refused);
        resolve();
      });
    });
    server.on('error', failed);
    return new AdminServer(server, (server.address() as { port: number }).port);
  }

  async close(): Promise<void> {
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }
}

function answer(
  req: IncomingMessage,
  res: ServerResponse,
  routes: AdminRoutes,
  failed: (error: unknown) => void,
): void {
  const path = (req.url ?? '').split('?', 1)[0];
  const send = (reply: HttpReply): void => {
    res.writeHead(reply.status, { 'Content-Type': reply.contentType ?? 'application/json' }).end(reply.body);
  };
  if (req.method !== 'GET') {
    send(NOT_FOUND);
    return;
  }
  try {
    if (path === '/healthz') send(routes.healthz());
    else if (path === '/readyz') send(routes.readyz());
    else if (path === '/metrics')
      routes.metrics().then(send, (error: unknown) => {
        failed(error);
        send(UNAVAILABLE);
      });
    else send(NOT_FOUND);
  } catch (error) {
    failed(error);
    send(UNAVAILABLE);
  }
}
