import type { ParentToPeer, PeerConfig, PeerToParent } from './protocol.js';
import { OpenLoopPublisher, type Sink } from './publisher.js';

/** What each peer server implements: listen, fan one message out to a topic, close. */
export interface PeerServer {
  /** Resolves with the bound port (the config's host, a free port). */
  listen(): Promise<number>;
  readonly publish: Sink;
  close(): Promise<void>;
}

function send(message: PeerToParent): void {
  process.send?.(message);
}

/**
 * The process around a peer server: reads its PeerConfig, starts it, runs the shared open-loop
 * publisher into it, and answers the benchmark over IPC (see protocol.ts).
 */
export function runPeer(name: string, create: (config: PeerConfig) => PeerServer): void {
  if (!process.send || !process.env.PEER_CONFIG) {
    process.stderr.write(`${name}: a benchmark child process; started by bench/fanout/servers.ts\n`);
    process.exitCode = 2;
    return;
  }
  const config = JSON.parse(process.env.PEER_CONFIG) as PeerConfig;
  const server = create(config);
  const publisher = new OpenLoopPublisher(config, server.publish);
  // The parent went away: never linger holding a port and connections.
  process.on('disconnect', () => process.exit(1));
  process.on('message', (message: ParentToPeer) => {
    switch (message.kind) {
      case 'stats':
        send({ kind: 'stats', stats: publisher.stats(message.fromEpochMs, message.toEpochMs) });
        return;
      case 'stop':
        publisher.stop();
        void server.close().finally(() => process.exit(0));
        return;
    }
  });
  server.listen().then(
    (port) => {
      publisher.start();
      send({ kind: 'listening', port });
    },
    (error: unknown) => {
      process.stderr.write(`${name}: cannot listen: ${String(error)}\n`);
      process.exit(1);
    },
  );
}
