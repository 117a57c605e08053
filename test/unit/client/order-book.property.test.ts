import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OrderBook } from '../../../src/client/order-book.js';
import type { L2UpdateMessage, SnapshotMessage, WireChange } from '../../../src/client/protocol.js';

type Levels = Map<string, string>;
interface Reference {
  bids: Levels;
  asks: Levels;
}

const sorted = (levels: Levels, descending: boolean) =>
  [...levels].sort((a, b) => (descending ? Number(b[0]) - Number(a[0]) : Number(a[0]) - Number(b[0])));

/** The gateway's book after every event of a random stream: bids below 100, asks from 100, never crossed. */
function stream(steps: { side: boolean; tick: number; size: number }[]) {
  const book: Reference = { bids: new Map(), asks: new Map() };
  const history: { bids: [string, string][]; asks: [string, string][] }[] = [{ bids: [], asks: [] }];
  const updates: L2UpdateMessage[] = [];
  steps.forEach((step, i) => {
    const price = (step.side ? 99 - step.tick : 100 + step.tick).toFixed(2);
    const size = step.size === 0 ? '0.0000' : (step.size / 100).toFixed(4);
    const levels = step.side ? book.bids : book.asks;
    if (step.size === 0) levels.delete(price);
    else levels.set(price, size);
    const change: WireChange = [step.side ? 'buy' : 'sell', price, size];
    updates.push({ type: 'l2update', product_id: 'BTC-USD', changes: [change], time: '', sequence: i + 1 });
    history.push({ bids: sorted(book.bids, true), asks: sorted(book.asks, false) });
  });
  return { updates, history };
}

const snapshotAt = (history: ReturnType<typeof stream>['history'], sequence: number): SnapshotMessage => ({
  type: 'snapshot',
  product_id: 'BTC-USD',
  bids: history[sequence]!.bids,
  asks: history[sequence]!.asks,
  sequence,
  time: '',
});

const step = fc.record({
  side: fc.boolean(),
  tick: fc.integer({ min: 0, max: 20 }),
  size: fc.integer({ min: 0, max: 5 }),
});
/** What the network does to each update: deliver it, lose it, or deliver it twice; sometimes a fresh snapshot comes. */
const fate = fc.constantFrom('deliver', 'deliver', 'deliver', 'deliver', 'drop', 'duplicate', 'snapshot');

describe('OrderBook against a reference built from the full stream', () => {
  it('is always equal to the gateway book at its sequence, or marked stale', () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 200 }),
        fc.array(fate, { minLength: 200, maxLength: 200 }),
        (steps, fates) => {
          const { updates, history } = stream(steps);
          const book = new OrderBook('BTC-USD', true);
          book.applySnapshot(snapshotAt(history, 0));
          const check = () => {
            const view = book.view();
            if (!view.synced) {
              expect(book.bids).toEqual([]);
              expect(book.asks).toEqual([]);
              return;
            }
            expect({ bids: view.bids, asks: view.asks }).toEqual(history[view.sequence]);
          };
          updates.forEach((update, i) => {
            const f = fates[i]!;
            if (f === 'drop') return;
            if (f === 'snapshot') {
              // A resync: the book is replaced, never merged into.
              book.applySnapshot(snapshotAt(history, update.sequence));
              check();
              return;
            }
            book.applyUpdate(update);
            check();
            if (f === 'duplicate') {
              expect(book.applyUpdate(update)).toBe('ignored');
              check();
            }
            // An old update replayed after the book moved on is discarded too.
            if (i > 2) {
              book.applyUpdate(updates[i - 2]!);
              check();
            }
          });
          if (!fates.slice(0, updates.length).includes('drop')) expect(book.synced).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
