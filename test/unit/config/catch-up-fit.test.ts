import { describe, expect, it } from 'vitest';
import { catchUpFit } from '../../../src/config/catch-up-fit.js';
import { CONFIG_VARIABLES, loadConfig } from '../../../src/config/config.js';
import { productFromId } from '../../../src/config/products.js';
import { encodeStatus, STATUS_MESSAGE_MAX_CHARS } from '../../../src/hub/messages.js';

const CURRENCY_IDS = ['USD', 'EUR', 'GBP', 'USDC', 'USDT', 'BTC', 'ETH', 'SOL', 'LTC', 'DOGE'];
/** Every product PRODUCTS accepts: 90 ordered pairs of distinct known currencies. */
const EVERY_PRODUCT = CURRENCY_IDS.flatMap((base) =>
  CURRENCY_IDS.filter((quote) => quote !== base).map((quote) => `${base}-${quote}`),
);

function errors(env: Record<string, string>): readonly string[] {
  const result = loadConfig(env);
  return result.ok ? [] : result.errors;
}

describe('the catch-up must fit under WS_MAX_BACKPRESSURE_BYTES', () => {
  const products = EVERY_PRODUCT.map((id) => {
    const spec = productFromId(id);
    if (typeof spec === 'string') throw new Error(spec);
    return spec;
  });

  it('the bound is the status message with every status_message at its longest, which the encoder caps', () => {
    const fit = catchUpFit(16_384, products);
    const longest = encodeStatus(products, () => 'x'.repeat(STATUS_MESSAGE_MAX_CHARS)).length;
    expect(fit.largestMessage).toBe(longest + 10);
    // A longer reason is cut: the bound holds whatever the upstream's error text.
    expect(encodeStatus(products, () => 'x'.repeat(10_000)).length).toBe(longest);
    expect(fit.sendBudget).toBe(8_192);
    expect(fit.required).toBe(8_192 + fit.largestMessage + fit.slowConsumeFrame);
    console.log(
      `90 products: largest queued message ${fit.largestMessage} B, ErrSlowConsume ${fit.slowConsumeFrame} B`,
    );
  });

  it('refuses a hard limit a piece of the largest queued message and ErrSlowConsume cannot fit under, naming the variables', () => {
    const env = {
      PRODUCTS: EVERY_PRODUCT.join(','),
      // Twice the high-water mark, which alone would pass.
      WS_BACKPRESSURE_HIGH_BYTES: '32768',
      WS_MAX_BACKPRESSURE_BYTES: '65536',
    };
    const fit = catchUpFit(32_768, products);
    expect(fit.required).toBeGreaterThan(65_536);
    expect(errors(env)).toEqual([
      `WS_MAX_BACKPRESSURE_BYTES="65536" is invalid (below ${fit.required}: a slow consumer's catch-up may leave half ` +
        `of WS_BACKPRESSURE_HIGH_BYTES=32768 plus its largest queued message buffered, ${fit.largestMessage} bytes ` +
        `for the 90 products of PRODUCTS, and the ErrSlowConsume after it needs ${fit.slowConsumeFrame} more; raise it, ` +
        `lower WS_BACKPRESSURE_HIGH_BYTES or serve fewer products): expected ${CONFIG_VARIABLES.WS_MAX_BACKPRESSURE_BYTES.accepts}`,
    ]);
    expect(errors({ ...env, WS_MAX_BACKPRESSURE_BYTES: String(fit.required) })).toEqual([]);
    expect(errors({ ...env, WS_MAX_BACKPRESSURE_BYTES: String(fit.required - 1) })).toHaveLength(1);
  });

  it('is reported with the other configuration errors at once', () => {
    const reported = errors({
      PRODUCTS: EVERY_PRODUCT.join(','),
      WS_BACKPRESSURE_HIGH_BYTES: '32768',
      WS_MAX_BACKPRESSURE_BYTES: '65536',
      PORT: 'x',
    });
    expect(reported.map((e) => e.split('=')[0])).toEqual(['PORT', 'WS_MAX_BACKPRESSURE_BYTES']);
  });

  it('the defaults, and the tightest limits with the default products, fit', () => {
    expect(errors({})).toEqual([]);
    expect(errors({ PRODUCTS: EVERY_PRODUCT.join(',') })).toEqual([]);
    expect(
      errors({
        PRODUCTS: EVERY_PRODUCT.join(','),
        WS_BACKPRESSURE_HIGH_BYTES: '16384',
        WS_MAX_BACKPRESSURE_BYTES: '65536',
      }),
    ).toEqual([]);
    expect(errors({ WS_BACKPRESSURE_HIGH_BYTES: '16384', WS_MAX_BACKPRESSURE_BYTES: '65536' })).toEqual([]);
    expect(errors({ WS_BACKPRESSURE_HIGH_BYTES: '32768', WS_MAX_BACKPRESSURE_BYTES: '65536' })).toEqual([]);
  });
});
