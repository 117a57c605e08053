import { connect, createServer, type Server, type Socket } from 'node:net';

interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  frozen: boolean;
  cutNext: boolean;
}

/**
 * A TCP proxy in front of the gateway that injects network faults into the links passing through
 * it: freeze (bytes stop flowing both ways, as on a black-holed path, and nobody is told), drop
 * (both sides closed abruptly) and cut (the next chunk from the gateway is delivered only in part,
 * mid-frame, then the link is dropped). New links after a fault work normally.
 */
export class FaultProxy {
  private constructor(
    private readonly server: Server,
    private readonly links: Set<Link>,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<FaultProxy> {
    const links = new Set<Link>();
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      const link: Link = { client, upstream, frozen: false, cutNext: false };
      links.add(link);
      const end = () => {
        links.delete(link);
        client.destroy();
        upstream.destroy();
      };
      client.on('data', (chunk) => {
        if (!link.frozen) upstream.write(chunk);
      });
      upstream.on('data', (chunk) => {
        if (link.frozen) return;
        if (link.cutNext && chunk.length > 1) {
          client.write(chunk.subarray(0, Math.floor(chunk.length / 2)), () => end());
          return;
        }
        client.write(chunk);
      });
      for (const socket of [client, upstream]) {
        socket.on('error', end);
        socket.on('close', end);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new FaultProxy(server, links, (server.address() as { port: number }).port);
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  get linkCount(): number {
    return this.links.size;
  }

  /** The links open now, to fault one of them. */
  current(): Link[] {
    return [...this.links];
  }

  freeze(link?: Link): void {
    for (const l of link ? [link] : this.links) l.frozen = true;
  }

  drop(link?: Link): void {
    for (const l of link ? [link] : [...this.links]) {
      l.client.resetAndDestroy();
      l.upstream.destroy();
    }
  }

  cut(link?: Link): void {
    for (const l of link ? [link] : this.links) l.cutNext = true;
  }

  async close(): Promise<void> {
    this.drop();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
