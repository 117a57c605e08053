/**
 * Peer: Socket.IO with its default in-memory adapter, WebSocket transport only (no long-polling,
 * no compression). A subscribe event joins the products' rooms; every message is emitted once to
 * its room with io.to(room).emit('l2update', message): Socket.IO encodes the packet once per
 * broadcast and writes it to each socket in the room.
 *
 * On the wire a message is 42["l2update",{...the same l2update object...}], so the same reader
 * finds its fields.
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { type PeerServer, runPeer } from './peer-main.js';
import { type PeerConfig, parseSubscribe, subscriptionsAck } from './protocol.js';
import type { L2Update } from './publisher.js';

function createSocketIoPeer(config: PeerConfig): PeerServer {
  const known = new Set(config.topics);
  const http = createServer();
  const io = new Server(http, {
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false,
    httpCompression: false,
    maxHttpBufferSize: 16 * 1024,
  });
  io.on('connection', (socket) => {
    socket.on('subscribe', (request: unknown) => {
      const topics = parseSubscribe(request, known);
      if (!topics) return;
      void socket.join(topics);
      socket.emit('subscriptions', subscriptionsAck(topics));
    });
  });
  return {
    listen: () =>
      new Promise((resolve, reject) => {
        http.once('error', reject);
        http.listen({ host: config.host, port: 0, backlog: 4096 }, () => {
          const address = http.address();
          resolve(typeof address === 'object' && address ? address.port : 0);
        });
      }),
    publish: (topic: string, message: L2Update) => {
      io.to(topic).emit('l2update', message);
    },
    close: () =>
      new Promise<void>((resolve) => {
        io.disconnectSockets(true);
        void io.close(() => resolve());
      }),
  };
}

runPeer('socketio-server', createSocketIoPeer);
