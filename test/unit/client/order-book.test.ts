import { describe, expect, it } from 'vitest';
import { OrderBook } from '../../../src/client/order-book.js';
import type { HeartbeatMessage, L2UpdateMessage, SnapshotMessage } from '../../../src/client/protocol.js';

const snapshot = (sequence: number, bids: [string, string][], asks: [string, string][]): SnapshotMessage => ({
  type: 'snapshot',
  product_id: 'ETH-USD',
  bids,
  asks,
  sequence,
  time: '',
});
const update = (sequence: number, ...changes: ['buy' | 'sell', string, string][]): L2UpdateMessage => ({
  type: 'l2update',
  product_id: 'ETH-USD',
  changes,
  time: '',
  sequence,
});
const heartbeat = (sequence: number): HeartbeatMessage => ({
  type: 'heartbeat',
  product_id: 'ETH-USD',
  sequence,
  last_trade_id: 0,
  time: '',
});

describe('OrderBook', () => {
  it('builds from a snapshot, keeps sides sorted best first, removes zero-size levels', () => {
    const book = new OrderBook('ETH-USD', true);
    expect(book.view()).toEqual({ synced: false, reason: 'awaiting_snapshot' });
    book.applySnapshot(
      snapshot(
        10,
        [
          ['99.00', '1'],
          ['100.00', '2'],
        ],
        [
          ['102.00', '1'],
          ['101.00', '3'],
        ],
      ),
    );
    expect(book.bids).toEqual([
      ['100.00', '2'],
      ['99.00', '1'],
    ]);
    expect(book.asks).toEqual([
      ['101.00', '3'],
      ['102.00', '1'],
    ]);
    expect(book.applyUpdate(update(11, ['buy', '100.50', '4'], ['sell', '101.00', '0.000']))).toBe('applied');
    expect(book.view(1)).toEqual({
      synced: true,
      sequence: 11,
      bids: [['100.50', '4']],
      asks: [['102.00', '1']],
    });
  });

  it('discards updates at or below the snapshot sequence', () => {
    const book = new OrderBook('ETH-USD', true);
    book.applySnapshot(snapshot(10, [['99.00', '1']], [['101.00', '1']]));
    expect(book.applyUpdate(update(10, ['buy', '99.00', '5']))).toBe('ignored');
    expect(book.applyUpdate(update(3, ['buy', '99.00', '5']))).toBe('ignored');
    expect(book.bids).toEqual([['99.00', '1']]);
  });

  it('a gap makes it stale at once, drops its levels, and a snapshot replaces it (no merge)', () => {
    const book = new OrderBook('ETH-USD', true);
    book.applySnapshot(
      snapshot(
        10,
        [
          ['99.00', '1'],
          ['98.00', '1'],
        ],
        [['101.00', '1']],
      ),
    );
    expect(book.applyUpdate(update(12, ['buy', '97.00', '1']))).toEqual({ stale: 'gap' });
    expect(book.synced).toBe(false);
    expect(book.staleReason).toBe('gap');
    expect(book.bids).toEqual([]);
    expect(book.view()).toEqual({ synced: false, reason: 'gap' });
    expect(book.applyUpdate(update(13, ['buy', '96.00', '1']))).toBe('ignored');
    book.applySnapshot(snapshot(20, [['95.00', '2']], [['105.00', '2']]));
    expect(book.view()).toEqual({
      synced: true,
      sequence: 20,
      bids: [['95.00', '2']],
      asks: [['105.00', '2']],
    });
  });

  it('non-strict books accept sequence jumps (merged updates)', () => {
    const book = new OrderBook('ETH-USD', false);
    book.applySnapshot(snapshot(10, [['99.00', '1']], [['101.00', '1']]));
    expect(book.applyUpdate(update(17, ['buy', '99.00', '2']))).toBe('applied');
    expect(book.sequence).toBe(17);
  });

  it('a crossed book is stale', () => {
    const book = new OrderBook('ETH-USD', true);
    book.applySnapshot(snapshot(10, [['99.00', '1']], [['101.00', '1']]));
    expect(book.applyUpdate(update(11, ['buy', '101.00', '1']))).toEqual({ stale: 'crossed' });
    expect(book.applySnapshot(snapshot(12, [['102.00', '1']], [['101.00', '1']]))).toEqual({
      stale: 'crossed',
    });
    expect(book.synced).toBe(false);
  });

  it('a heartbeat ahead is tolerated until the next heartbeat, then the book is stale', () => {
    const book = new OrderBook('ETH-USD', true);
    book.applySnapshot(snapshot(10, [['99.00', '1']], [['101.00', '1']]));
    expect(book.checkHeartbeat(heartbeat(11))).toBe('applied');
    book.applyUpdate(update(11, ['buy', '98.00', '1']));
    expect(book.checkHeartbeat(heartbeat(12))).toBe('applied');
    expect(book.checkHeartbeat(heartbeat(12))).toEqual({ stale: 'heartbeat' });
    expect(book.synced).toBe(false);
  });
});
