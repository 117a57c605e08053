import { describe, expect, it } from 'vitest';
import { Random } from '../../../src/feeds/simulator/random.js';
import { L2Book } from '../../../src/hub/book.js';
import { compareCanonical, formatUnits } from '../../../src/market/decimal.js';
import type { BookChange, PriceLevel, Side } from '../../../src/market/types.js';

const ZERO = '0.00000000';

function levels(book: L2Book) {
  return { bids: book.bids.top(), asks: book.asks.top() };
}

function seeded(): L2Book {
  const book = new L2Book();
  expect(
    book.reset(
      [
        ['100.00', '1.00000000', 1],
        ['99.50', '2.00000000', 2],
        ['9.99', '3.00000000', 3],
      ],
      [
        ['101.00', '1.50000000', 1],
        ['102.00', '3.00000000', 4],
        ['1000.00', '0.10000000', 1],
      ],
    ),
  ).toBe(true);
  return book;
}

describe('L2Book sides', () => {
  it('starts empty', () => {
    const book = new L2Book();
    expect(book.bids.size).toBe(0);
    expect(book.asks.size).toBe(0);
    expect(book.bids.best()).toBeUndefined();
    expect(book.asks.best()).toBeUndefined();
    expect(book.bids.top()).toEqual([]);
    expect(book.isCrossed()).toBe(false);
  });

  it('keeps bids highest first and asks lowest first, numerically', () => {
    const book = new L2Book();
    for (const price of ['99.99', '100.00', '9.99', '1000.00', '100.01', '0.01']) {
      book.bids.set(price, '1.00000000', 1);
      book.asks.set(price, '1.00000000', 1);
    }
    const bidPrices = book.bids.top().map((l) => l[0]);
    const askPrices = book.asks.top().map((l) => l[0]);
    expect(bidPrices).toEqual(['1000.00', '100.01', '100.00', '99.99', '9.99', '0.01']);
    expect(askPrices).toEqual(['0.01', '9.99', '99.99', '100.00', '100.01', '1000.00']);
    expect(book.bids.best()).toEqual(['1000.00', '1.00000000', 1]);
    expect(book.asks.best()).toEqual(['0.01', '1.00000000', 1]);
  });

  it('side() maps buy to bids and sell to asks', () => {
    const book = new L2Book();
    expect(book.side('buy')).toBe(book.bids);
    expect(book.side('sell')).toBe(book.asks);
  });

  it('set replaces an existing level in place and returns the level it replaced', () => {
    const book = seeded();
    expect(book.bids.set('99.50', '5.00000000', 7)).toEqual(['99.50', '2.00000000', 2]);
    expect(book.bids.size).toBe(3);
    expect(book.bids.get('99.50')).toEqual(['99.50', '5.00000000', 7]);
    expect(book.bids.top().map((l) => l[0])).toEqual(['100.00', '99.50', '9.99']);
  });

  it('set returns undefined for a new level', () => {
    const book = seeded();
    expect(book.asks.set('101.50', '0.50000000', 1)).toBeUndefined();
    expect(book.asks.top().map((l) => l[0])).toEqual(['101.00', '101.50', '102.00', '1000.00']);
  });

  it('a zero size removes the level', () => {
    const book = seeded();
    expect(book.asks.set('101.00', ZERO, 0)).toEqual(['101.00', '1.50000000', 1]);
    expect(book.asks.get('101.00')).toBeUndefined();
    expect(book.asks.size).toBe(2);
    expect(book.asks.best()).toEqual(['102.00', '3.00000000', 4]);
  });

  it('removing a level that does not exist changes nothing', () => {
    const book = seeded();
    const before = levels(book);
    expect(book.bids.set('42.00', ZERO, 0)).toBeUndefined();
    expect(levels(book)).toEqual(before);
  });

  it('top(depth) returns at most depth levels, best first', () => {
    const book = seeded();
    expect(book.bids.top(1)).toEqual([['100.00', '1.00000000', 1]]);
    expect(book.asks.top(2)).toEqual([
      ['101.00', '1.50000000', 1],
      ['102.00', '3.00000000', 4],
    ]);
    expect(book.asks.top(10)).toHaveLength(3);
    expect(book.asks.top(0)).toEqual([]);
  });

  it('isCrossed is true when the best bid reaches the best ask (locked counts)', () => {
    const book = new L2Book();
    book.bids.set('100.00', '1.00000000', 1);
    book.asks.set('100.01', '1.00000000', 1);
    expect(book.isCrossed()).toBe(false);
    book.bids.set('100.01', '1.00000000', 1);
    expect(book.isCrossed()).toBe(true);
    book.bids.set('100.01', ZERO, 0);
    book.bids.set('100.02', '1.00000000', 1);
    expect(book.isCrossed()).toBe(true);
  });
});

describe('L2Book.apply', () => {
  it('applies every change and returns true when the result does not cross', () => {
    const book = seeded();
    const changes: BookChange[] = [
      ['buy', '100.50', '0.25000000', 1],
      ['sell', '101.00', ZERO, 0],
      ['sell', '102.00', '2.00000000', 3],
      ['buy', '9.99', ZERO, 0],
    ];
    expect(book.apply(changes)).toBe(true);
    expect(levels(book)).toEqual({
      bids: [
        ['100.50', '0.25000000', 1],
        ['100.00', '1.00000000', 1],
        ['99.50', '2.00000000', 2],
      ],
      asks: [
        ['102.00', '2.00000000', 3],
        ['1000.00', '0.10000000', 1],
      ],
    });
  });

  it('refuses a change that would cross and leaves the book exactly as it was', () => {
    const book = seeded();
    const before = levels(book);
    expect(book.apply([['buy', '101.00', '1.00000000', 1]])).toBe(false);
    expect(levels(book)).toEqual(before);
    expect(book.apply([['sell', '100.00', '1.00000000', 1]])).toBe(false);
    expect(levels(book)).toEqual(before);
    expect(book.apply([['sell', '50.00', '1.00000000', 1]])).toBe(false);
    expect(levels(book)).toEqual(before);
  });

  it('is atomic: earlier valid changes of a refused batch are undone too', () => {
    const book = seeded();
    const before = levels(book);
    const changes: BookChange[] = [
      ['buy', '99.50', '9.00000000', 9],
      ['sell', '102.00', ZERO, 0],
      ['buy', '100.75', '1.00000000', 1],
      ['buy', '100.75', '2.00000000', 2],
      ['sell', '1000.00', '7.00000000', 7],
      ['buy', '100.00', ZERO, 0],
      ['buy', '101.50', '1.00000000', 1],
    ];
    expect(book.apply(changes)).toBe(false);
    expect(levels(book)).toEqual(before);
    expect(book.isCrossed()).toBe(false);
  });

  it('judges the final state, so a batch that moves both sides past each other is accepted', () => {
    const book = seeded();
    const changes: BookChange[] = [
      ['buy', '101.00', '1.00000000', 1],
      ['sell', '101.00', ZERO, 0],
    ];
    expect(book.apply(changes)).toBe(true);
    expect(book.bids.best()).toEqual(['101.00', '1.00000000', 1]);
    expect(book.asks.best()).toEqual(['102.00', '3.00000000', 4]);
  });

  it('accepts an empty batch', () => {
    const book = seeded();
    const before = levels(book);
    expect(book.apply([])).toBe(true);
    expect(levels(book)).toEqual(before);
  });

  it('matches a reference model over many random batches', () => {
    const random = new Random(12345);
    const book = new L2Book();
    const reference = { buy: new Map<string, PriceLevel>(), sell: new Map<string, PriceLevel>() };
    const sorted = (side: Side) =>
      [...reference[side].values()].sort((a, b) =>
        side === 'buy' ? compareCanonical(b[0], a[0]) : compareCanonical(a[0], b[0]),
      );
    let refused = 0;
    for (let round = 0; round < 2_000; round++) {
      const batch: BookChange[] = [];
      const count = 1 + random.below(4);
      for (let i = 0; i < count; i++) {
        const side: Side = random.next() < 0.5 ? 'buy' : 'sell';
        // Bids mostly below 100.00, asks mostly above, with some overlap to provoke crosses.
        const ticks = side === 'buy' ? 9_800 + random.below(210) : 9_990 + random.below(210);
        const size = random.next() < 0.3 ? 0 : 1 + random.below(1_000_000);
        batch.push([side, formatUnits(ticks, 2), formatUnits(size, 8), size === 0 ? 0 : 1 + random.below(5)]);
      }
      const candidate = { buy: new Map(reference.buy), sell: new Map(reference.sell) };
      for (const [side, price, size, orders] of batch) {
        if (size === ZERO) candidate[side].delete(price);
        else candidate[side].set(price, [price, size, orders]);
      }
      const bestBid = [...candidate.buy.keys()].sort((a, b) => compareCanonical(b, a))[0];
      const bestAsk = [...candidate.sell.keys()].sort(compareCanonical)[0];
      const crosses =
        bestBid !== undefined && bestAsk !== undefined && compareCanonical(bestBid, bestAsk) >= 0;
      expect(book.apply(batch)).toBe(!crosses);
      if (crosses) refused++;
      else {
        reference.buy = candidate.buy;
        reference.sell = candidate.sell;
      }
      // Strings compare far faster than deep equality on hundreds of levels.
      expect(JSON.stringify(book.bids.top())).toBe(JSON.stringify(sorted('buy')));
      expect(JSON.stringify(book.asks.top())).toBe(JSON.stringify(sorted('sell')));
      expect(book.isCrossed()).toBe(false);
    }
    // The generator must exercise both outcomes for the comparison to mean anything.
    expect(refused).toBeGreaterThan(100);
    expect(refused).toBeLessThan(1_900);
  });
});

describe('L2Book.reset', () => {
  it('replaces the whole book', () => {
    const book = seeded();
    expect(book.reset([['50.00', '1.00000000', 1]], [['51.00', '2.00000000', 2]])).toBe(true);
    expect(levels(book)).toEqual({
      bids: [['50.00', '1.00000000', 1]],
      asks: [['51.00', '2.00000000', 2]],
    });
  });

  it('sorts unsorted snapshot levels and skips zero-size levels', () => {
    const book = new L2Book();
    expect(
      book.reset(
        [
          ['98.00', '1.00000000', 1],
          ['100.00', '2.00000000', 1],
          ['99.00', ZERO, 0],
        ],
        [
          ['103.00', '1.00000000', 1],
          ['101.00', '2.00000000', 1],
        ],
      ),
    ).toBe(true);
    expect(book.bids.top().map((l) => l[0])).toEqual(['100.00', '98.00']);
    expect(book.asks.top().map((l) => l[0])).toEqual(['101.00', '103.00']);
  });

  it('accepts one-sided and empty snapshots', () => {
    const book = new L2Book();
    expect(book.reset([], [['1.00', '1.00000000', 1]])).toBe(true);
    expect(book.asks.size).toBe(1);
    expect(book.reset([], [])).toBe(true);
    expect(book.bids.size + book.asks.size).toBe(0);
  });

  it('refuses a crossed or locked snapshot and leaves the book empty', () => {
    const book = seeded();
    expect(book.reset([['101.00', '1.00000000', 1]], [['100.00', '1.00000000', 1]])).toBe(false);
    expect(levels(book)).toEqual({ bids: [], asks: [] });
    const again = seeded();
    expect(again.reset([['100.00', '1.00000000', 1]], [['100.00', '1.00000000', 1]])).toBe(false);
    expect(levels(again)).toEqual({ bids: [], asks: [] });
    expect(again.isCrossed()).toBe(false);
  });
});
