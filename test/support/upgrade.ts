import { request } from 'node:http';

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
