/**
 * Peer: the `ws` package, the common Node.js pattern. Subscriptions are a Set of sockets per topic;
 * every message is serialised once into one Buffer, and a loop hands that Buffer to each
 * subscriber's send() (ws frames and writes it per socket). No backpressure handling: a slow
 * subscriber's messages queue in its socket's buffer, as they do in most code written this way.
 */
import { WebSocket, WebSocketServer } from 'ws';
import { type PeerServer, runPeer } from './peer-main.js';
import { type PeerConfig, parseSubscribe, subscriptionsAck } from './protocol.js';
import type { L2Update } from './publisher.js';

const TEXT = { binary: false } as const;

function createWsPeer(config: PeerConfig): PeerServer {
  const known = new Set(config.topics);
  const subscribers = new Map<string, Set<WebSocket>>(config.topics.map((t) => [t, new Set()]));
  let server: WebSocketServer | undefined;
  const onConnection = (ws: WebSocket) => {
    const mine: string[] = [];
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let request: unknown;
      try {
        request = JSON.parse(String(data));
      } catch {
        return;
      }
      const topics = parseSubscribe(request, known);
      if (!topics) return;
      for (const topic of topics) {
        subscribers.get(topic)!.add(ws);
        mine.push(topic);
      }
      ws.send(JSON.stringify(subscriptionsAck(topics)));
    });
    ws.on('close', () => {
      for (const topic of mine) subscribers.get(topic)!.delete(ws);
    });
    ws.on('error', () => {});
  };
  return {
    listen: () =>
      new Promise((resolve, reject) => {
        const wss = new WebSocketServer({
          host: config.host,
          port: 0,
          perMessageDeflate: false,
          maxPayload: 16 * 1024,
          clientTracking: true,
          backlog: 4096,
        });
        server = wss;
        wss.on('connection', onConnection);
        wss.once('listening', () => {
          const address = wss.address();
          resolve(typeof address === 'object' && address ? address.port : 0);
        });
        wss.once('error', reject);
      }),
    publish: (topic: string, message: L2Update) => {
      const data = Buffer.from(JSON.stringify(message));
      for (const ws of subscribers.get(topic)!) if (ws.readyState === WebSocket.OPEN) ws.send(data, TEXT);
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (!server) return resolve();
        for (const ws of server.clients) ws.terminate();
        server.close(() => resolve());
      }),
  };
}

runPeer('ws-server', createWsPeer);
