import { epochMs } from '../market/time.js';
import { CHANNELS, type Channel } from '../market/types.js';

interface ChannelMetrics {
  readonly sent: { inc(n: number): void };
  readonly latency: { observe(seconds: number): void };
}

/**
 * Counts what a turn of the event loop publishes in plain numbers and hands it to prom-client once,
 * from setImmediate: after uWebSockets.js has written the turn's messages (it writes them when the
 * turn's callbacks are done, before the loop polls again), not before. prom-client hashes the
 * labels on every call; made per publish, that work delayed every message of the turn and cost
 * about 4 % of the gateway's CPU at the bench's heavy point. The latency is measured at the flush,
 * so it covers the write too.
 */
export class PublishTally {
  private readonly channels: readonly ChannelMetrics[];
  private readonly sent: number[];
  /** Per channel: when each published message's feed event entered the gateway (epoch ms). */
  private readonly receivedAt: number[][];
  private scheduled = false;

  constructor(metricsOf: (channel: Channel) => ChannelMetrics) {
    this.channels = CHANNELS.map(metricsOf);
    this.sent = CHANNELS.map(() => 0);
    this.receivedAt = CHANNELS.map(() => []);
  }

  /** One message published on `channel` to `subscribers` connections. */
  published(channel: Channel, subscribers: number, receivedAtEpochMs: number): void {
    const index = CHANNELS.indexOf(channel);
    this.sent[index]! += subscribers;
    this.receivedAt[index]!.push(receivedAtEpochMs);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Hands everything counted so far to prom-client. */
  readonly flush = (): void => {
    this.scheduled = false;
    const now = epochMs();
    for (let index = 0; index < this.channels.length; index++) {
      const sent = this.sent[index]!;
      if (sent === 0) continue;
      const { sent: counter, latency } = this.channels[index]!;
      counter.inc(sent);
      this.sent[index] = 0;
      const received = this.receivedAt[index]!;
      for (const at of received) latency.observe((now - at) / 1000);
      received.length = 0;
    }
  };
}
