import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeL2Update } from '../../../src/hub/messages.js';
import { formatUnits, isZero } from '../../../src/market/decimal.js';
import { isoMicros } from '../../../src/market/time.js';
import type { BookChange } from '../../../src/market/types.js';

describe('encodeL2Update', () => {
  it('writes exactly what JSON.stringify writes for the l2update object', () => {
    const change = fc
      .tuple(
        fc.constantFrom('buy' as const, 'sell' as const),
        fc.integer({ min: 1, max: 1e12 }),
        fc.integer({ min: 0, max: 1e14 }),
        fc.integer({ min: 0, max: 3 }),
      )
      .map(([side, ticks, lots, decimals]): BookChange => {
        const size = formatUnits(lots, 8);
        return [side, formatUnits(ticks, decimals), size, isZero(size) ? 0 : 1 + (lots % 7)];
      });
    fc.assert(
      fc.property(
        fc.constantFrom('BTC-USD', 'ETH-BTC', 'A"B\\C'),
        fc.array(change, { maxLength: 5 }),
        fc.integer({ min: 0, max: 4_102_444_800_000_000 }),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        (productId, changes, micros, sequence) => {
          const time = isoMicros(micros);
          expect(encodeL2Update(productId, changes, time, sequence)).toBe(
            JSON.stringify({
              type: 'l2update',
              product_id: productId,
              changes: changes.map(([side, price, size]) => [side, price, size]),
              time,
              sequence,
            }),
          );
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
