import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/**
 * A raw TCP client that completes the WebSocket handshake and then goes silent: it never reads
 * on purpose, never answers pings or close frames. Stands in for a dead or hostile peer.
 */
export async function silentWebSocket(
  port: number,
  host = '127.0.0.1',
  localAddress?: string,
): Promise<Socket> {
  const socket = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
  await once(socket, 'connect');
  socket.write(
    `GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  let head = '';
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = await once(socket, 'data');
    head += String(chunk);
  }
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`);
  return socket;
}
