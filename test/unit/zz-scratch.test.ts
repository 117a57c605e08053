import { test } from 'vitest';
import { CURRENCIES, type ProductSpec, productFromId } from '../../src/config/products.js';
import { MarketModel } from '../../src/feeds/simulator/market.js';
import { Random } from '../../src/feeds/simulator/random.js';
import { L2Book } from '../../src/hub/book.js';

test('sim', () => {
  const ids = [];
  for (const b of CURRENCIES.keys()) for (const q of CURRENCIES.keys()) if (b !== q) ids.push(`${b}-${q}`);
  for (const id of ids) {
    const spec = productFromId(id) as ProductSpec;
    const m = new MarketModel(spec, new Random(7), 20);
    const book = new L2Book();
    const snap = m.snapshot('2024-01-01T00:00:00.000000Z');
    let crossed = book.reset(snap.bids, snap.asks) ? 0 : 1;
    let err = '';
    try {
      for (let i = 0; i < 3000; i++) {
        for (const e of m.step('2024-01-01T00:00:00.000000Z')) {
          if (e.type === 'snapshot') continue;
          if (!book.apply(e.changes)) crossed++;
        }
      }
    } catch (e) {
      err = String(e);
    }
    if (crossed || err) console.log(id, spec.referencePrice * 10 ** spec.quoteDecimals, crossed, err);
  }
});
