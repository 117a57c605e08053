/**
 * The gateway as a benchmark peer: built by its own composition root (startGateway) from the
 * environment variables users set, with the V8 options users run it with, and fed through its
 * FeedSource interface by the same open-loop publisher as raw uWS, ws and Socket.IO. So every server
 * gets the same changes at the same times, and what is compared is what each does with them: the
 * gateway's hub checks the sequence, applies the change to the product's L2 book, serialises the
 * l2update once and hands it to uWS; the peers serialise and publish. The built-in simulator's
 * market model (which makes the orders, fills and trades behind its events) is not part of it;
 * `--gateway-feed simulator` runs the gateway as `npm start` does, on its simulator.
 */
import { loadConfig } from '../../src/config/config.js';
import type { FeedSink, FeedSource } from '../../src/feeds/types.js';
import { type Gateway, startGateway } from '../../src/gateway.js';
import { readOpenFilesLimit } from '../../src/limits/open-descriptors.js';
import { createLogger } from '../../src/logging/logger.js';
import { isZero } from '../../src/market/decimal.js';
import { epochMs, isoMicros, nowMicros } from '../../src/market/time.js';
import { nativeUws } from '../../src/server/uws.js';
import { type PeerServer, runPeer } from './peer-main.js';
import type { PeerConfig } from './protocol.js';
import type { L2Update } from './publisher.js';

/**
 * The publisher's messages as upstream events. Each product starts from an empty book (a snapshot
 * at sequence 1); the publisher's sequence n becomes n + 1 and its one change a level with one
 * order (none once its size is zero). Its prices are cents and its sizes satoshis for every
 * product, canonical decimals by construction, so the source is well-formed.
 */
class PublisherFeed implements FeedSource {
  readonly name = 'bench';
  readonly wellFormed = true;
  private sink: FeedSink | undefined;

  constructor(private readonly productIds: readonly string[]) {}

  async start(sink: FeedSink): Promise<void> {
    const time = isoMicros(nowMicros());
    for (const id of this.productIds)
      sink.onEvent({ type: 'snapshot', product_id: id, sequence: 1, time, bids: [], asks: [] }, epochMs());
    this.sink = sink;
  }

  async stop(): Promise<void> {
    this.sink = undefined;
  }

  notLiveReason(): string | undefined {
    return this.sink ? undefined : 'the bench feed is stopped';
  }

  /** The hub asks only after rejecting an event; the publisher's book never crosses, so this run is invalid. */
  requestSnapshot(productId: string): void {
    process.stderr.write(`gateway-server: the hub rejected a bench event of ${productId}; stopping\n`);
    process.exit(1);
  }

  readonly publish = (_topic: string, message: L2Update): void => {
    const [side, price, size] = message.changes[0]!;
    this.sink?.onEvent(
      {
        type: 'book',
        product_id: message.product_id,
        sequence: message.sequence + 1,
        time: message.time,
        changes: [[side, price, size, isZero(size) ? 0 : 1]],
      },
      epochMs(),
    );
  };
}

function createGatewayPeer(config: PeerConfig): PeerServer {
  const loaded = loadConfig(process.env, { openFilesLimit: readOpenFilesLimit() });
  if (!loaded.ok) throw new Error(`gateway-server: invalid configuration: ${loaded.errors.join('; ')}`);
  const feed = new PublisherFeed(config.topics);
  let gateway: Gateway | undefined;
  return {
    listen: async () => {
      gateway = await startGateway(loaded.config, createLogger(loaded.config.logLevel), nativeUws(), feed);
      return gateway.port;
    },
    publish: feed.publish,
    close: async () => {
      await gateway?.close();
    },
  };
}

runPeer('gateway-server', createGatewayPeer);
