import { once } from 'node:events';
import { createServer } from 'node:net';

/**
 * A port free now on `host`. uSockets sets SO_REUSEADDR and SO_REUSEPORT only when it is given a
 * port: PORT=0 is resolved here first, so that several worker threads can share the port and a
 * listen socket closed by the accept guard can be reopened while connections it accepted are open.
 */
export async function freePort(host: string): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}
