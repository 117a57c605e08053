import { once } from 'node:events';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface UpgradeOutcome {
  readonly status: number;
  readonly retryAfter: string | undefined;
  /** The refusal's reason (ws_connections_rejected_total label), from its JSON body. */
  readonly reason?: string;
  /** The upgraded socket, when the status is 101 (caller closes it). */
  readonly socket?: import('node:net').Socket;
}

/** One raw WebSocket upgrade attempt, with chosen headers and source address: shows the HTTP refusal. */
export function attemptUpgrade(
  port: number,
  options: { localAddress?: string; headers?: Record<string, string> } = {},
): Promise<UpgradeOutcome> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: '/',
      agent: false,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        ...options.headers,
      },
    });
    req.on('upgrade', (res, socket) =>
      resolve({ status: res.statusCode ?? 0, retryAfter: undefined, socket }),
    );
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => {
        const reason = body ? ((JSON.parse(body) as { reason?: string }).reason ?? undefined) : undefined;
        resolve({
          status: res.statusCode ?? 0,
          retryAfter: res.headers['retry-after'] as string | undefined,
          ...(reason ? { reason } : {}),
        });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * One WebSocket upgrade over raw TCP with exactly the extra header lines given, in order (repeated
 * names stay separate lines, as a proxy appending its own X-Forwarded-For line sends them). Resolves
 * with the status and, for a 101, the open socket (caller closes it); a refusal's socket is closed.
 */
export async function rawUpgrade(
  port: number,
  localAddress: string,
  headerLines: readonly string[],
): Promise<{ status: number; socket?: Socket }> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  await once(socket, 'connect');
  socket.write(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
      headerLines.map((line) => `${line}\r\n`).join('') +
      '\r\n',
  );
  let head = '';
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = await once(socket, 'data');
    head += String(chunk);
  }
  const status = Number(head.slice(9, 12));
  if (status === 101) return { status, socket };
  socket.destroy();
  return { status };
}
