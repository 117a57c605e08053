/**
 * Peer: raw uWebSockets.js, the practical ceiling of this stack. Each subscribe adds the connection
 * to the products' topics; every message is serialised once and handed to app.publish, which
 * writes it to every subscriber natively (no JavaScript per subscriber). The connection settings
 * are the gateway's defaults (4 MiB maxBackpressure, 120 s idle timeout with pings), without its
 * flow control: a subscriber over maxBackpressure is skipped silently, which shows as a gap.
 */
import uWS from 'uWebSockets.js';
import { type PeerServer, runPeer } from './peer-main.js';
import { type PeerConfig, parseSubscribe, subscriptionsAck } from './protocol.js';
import type { L2Update } from './publisher.js';

const decoder = new TextDecoder();

/** uWS apps have close() since v20.3; the shipped typings omit it. */
type ClosableApp = uWS.TemplatedApp & { close(): void };

function createUwsPeer(config: PeerConfig): PeerServer {
  const app = uWS.App() as ClosableApp;
  const known = new Set(config.topics);
  let listenSocket: uWS.us_listen_socket | undefined;
  app.ws<Record<string, never>>('/', {
    compression: uWS.DISABLED,
    maxPayloadLength: 16 * 1024,
    maxBackpressure: 4 * 1024 * 1024,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    message: (ws, message, isBinary) => {
      if (isBinary) return;
      let request: unknown;
      try {
        request = JSON.parse(decoder.decode(message));
      } catch {
        return;
      }
      const topics = parseSubscribe(request, known);
      if (!topics) return;
      for (const topic of topics) ws.subscribe(topic);
      ws.send(JSON.stringify(subscriptionsAck(topics)), false);
    },
  });
  return {
    listen: () =>
      new Promise((resolve, reject) => {
        app.listen(config.host, 0, (socket) => {
          if (!socket) return reject(new Error('uWS listen failed'));
          listenSocket = socket;
          resolve(uWS.us_socket_local_port(socket as unknown as uWS.us_socket));
        });
      }),
    publish: (topic: string, message: L2Update) => {
      app.publish(topic, JSON.stringify(message), false, false);
    },
    close: async () => {
      if (listenSocket) uWS.us_listen_socket_close(listenSocket);
      app.close();
    },
  };
}

runPeer('uws-server', createUwsPeer);
