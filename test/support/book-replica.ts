import type { Message } from './ws-client.js';

type Levels = Map<string, string>;

/** A client-side L2 book built the way a Coinbase client builds it: snapshot, then l2updates. */
export class BookReplica {
  bids: Levels = new Map();
  asks: Levels = new Map();
  sequence = 0;
  /** Books by sequence, so a REST book taken at sequence S can be compared with ours at S. */
  readonly history = new Map<number, { bids: [string, string][]; asks: [string, string][] }>();
  readonly sequences: number[] = [];

  apply(message: Message): void {
    if (message.type === 'snapshot') {
      this.bids = new Map(message.bids as [string, string][]);
      this.asks = new Map(message.asks as [string, string][]);
      this.sequence = message.sequence as number;
    } else if (message.type === 'l2update') {
      const sequence = message.sequence as number;
      if (sequence <= this.sequence) return;
      for (const [side, price, size] of message.changes as [string, string, string][]) {
        const levels = side === 'buy' ? this.bids : this.asks;
        if (Number(size) === 0) levels.delete(price);
        else levels.set(price, size);
      }
      this.sequence = sequence;
    } else {
      return;
    }
    this.sequences.push(this.sequence);
    this.history.set(this.sequence, this.levels());
  }

  levels(): { bids: [string, string][]; asks: [string, string][] } {
    const sorted = (levels: Levels, descending: boolean) =>
      [...levels].sort((a, b) => (descending ? Number(b[0]) - Number(a[0]) : Number(a[0]) - Number(b[0])));
    return { bids: sorted(this.bids, true), asks: sorted(this.asks, false) };
  }
}
