import type { HeartbeatMessage, L2UpdateMessage, SnapshotMessage, WireLevel } from './protocol.js';

/** Why a book stopped being current. */
export type StaleReason = 'gap' | 'crossed' | 'heartbeat' | 'disconnected';

/** [price, size], best first. */
export type BookLevel = WireLevel;

/** A read of the book: its levels only while they are known to be the gateway's at `sequence`. */
export type BookView =
  | {
      readonly synced: true;
      readonly sequence: number;
      readonly bids: readonly BookLevel[];
      readonly asks: readonly BookLevel[];
    }
  | { readonly synced: false; readonly reason: StaleReason | 'awaiting_snapshot' };

/** What one message did to the book; `stale` means it has just become inconsistent. */
export type BookOutcome = 'applied' | 'ignored' | { readonly stale: StaleReason };

interface Entry {
  readonly key: number;
  readonly level: BookLevel;
}

/** One side, kept sorted best first so the best level and the top N are reads, not sorts. */
class Side {
  entries: Entry[] = [];

  constructor(private readonly descending: boolean) {}

  replace(levels: readonly WireLevel[]): void {
    this.entries = [];
    for (const [price, size] of levels) this.set(price, size);
  }

  set(price: string, size: string): void {
    const key = Number(price);
    const index = this.search(key);
    const found = this.entries[index]?.key === key;
    if (Number(size) === 0) {
      if (found) this.entries.splice(index, 1);
    } else if (found) {
      this.entries[index] = { key, level: [price, size] };
    } else {
      this.entries.splice(index, 0, { key, level: [price, size] });
    }
  }

  best(): number | undefined {
    return this.entries[0]?.key;
  }

  /** The index of `key`, or where it would go. */
  private search(key: number): number {
    let low = 0;
    let high = this.entries.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const midKey = this.entries[mid]!.key;
      if (this.descending ? midKey > key : midKey < key) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

/**
 * A level-2 book of one product built from `snapshot` and `l2update` (docs/protocol.md §4.2). It
 * refuses to present a book it knows is wrong: on a sequence gap, a crossed book or a heartbeat it
 * stays behind, it drops its levels and reads as not synced until a new snapshot **replaces** it.
 */
export class OrderBook {
  private readonly bidSide = new Side(true);
  private readonly askSide = new Side(false);
  private seq = 0;
  private isSynced = false;
  private reason: StaleReason | undefined;
  /** A heartbeat's sequence the book had not reached yet; still behind it at the next heartbeat is a loss. */
  private heartbeatAhead: number | undefined;

  /**
   * @param strictSequence every l2update must follow the previous one by exactly 1: true on `level2`
   *   of a gateway with WS_THROTTLE_MS=0; false where merged updates make sequences jump.
   */
  constructor(
    readonly productId: string,
    private readonly strictSequence: boolean,
  ) {}

  get synced(): boolean {
    return this.isSynced;
  }

  /** The sequence of the last snapshot or update applied (0 before the first snapshot). */
  get sequence(): number {
    return this.seq;
  }

  /** Why the book is not synced; undefined while synced or before its first snapshot. */
  get staleReason(): StaleReason | undefined {
    return this.reason;
  }

  /** Bids best first; empty while the book is not synced. */
  get bids(): readonly BookLevel[] {
    return this.isSynced ? this.bidSide.entries.map((e) => e.level) : [];
  }

  get asks(): readonly BookLevel[] {
    return this.isSynced ? this.askSide.entries.map((e) => e.level) : [];
  }

  view(depth = Number.POSITIVE_INFINITY): BookView {
    if (!this.isSynced) return { synced: false, reason: this.reason ?? 'awaiting_snapshot' };
    const top = (side: Side) => side.entries.slice(0, depth).map((e) => e.level);
    return { synced: true, sequence: this.seq, bids: top(this.bidSide), asks: top(this.askSide) };
  }

  applySnapshot(snapshot: SnapshotMessage): BookOutcome {
    this.bidSide.replace(snapshot.bids);
    this.askSide.replace(snapshot.asks);
    this.seq = snapshot.sequence;
    this.heartbeatAhead = undefined;
    this.isSynced = true;
    this.reason = undefined;
    return this.crossed() ? this.markStale('crossed') : 'applied';
  }

  applyUpdate(update: L2UpdateMessage): BookOutcome {
    if (!this.isSynced || update.sequence <= this.seq) return 'ignored';
    if (this.strictSequence && update.sequence !== this.seq + 1) return this.markStale('gap');
    for (const [side, price, size] of update.changes) {
      (side === 'buy' ? this.bidSide : this.askSide).set(price, size);
    }
    this.seq = update.sequence;
    if (this.heartbeatAhead !== undefined && this.seq >= this.heartbeatAhead) this.heartbeatAhead = undefined;
    return this.crossed() ? this.markStale('crossed') : 'applied';
  }

  /**
   * A heartbeat ahead of the book is normal for one throttle interval; the book still behind it
   * when the next heartbeat (a second later) arrives has lost updates.
   */
  checkHeartbeat(heartbeat: HeartbeatMessage): BookOutcome {
    if (!this.isSynced) return 'ignored';
    if (this.heartbeatAhead !== undefined && this.seq < this.heartbeatAhead)
      return this.markStale('heartbeat');
    this.heartbeatAhead = heartbeat.sequence > this.seq ? heartbeat.sequence : undefined;
    return 'applied';
  }

  /** Drops the levels; returns the outcome, or 'ignored' if the book was not synced anyway. */
  markStale(reason: StaleReason): BookOutcome {
    if (!this.isSynced) return 'ignored';
    this.isSynced = false;
    this.reason = reason;
    this.heartbeatAhead = undefined;
    this.bidSide.replace([]);
    this.askSide.replace([]);
    return { stale: reason };
  }

  private crossed(): boolean {
    const bid = this.bidSide.best();
    const ask = this.askSide.best();
    return bid !== undefined && ask !== undefined && bid >= ask;
  }
}
