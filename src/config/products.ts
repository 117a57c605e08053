/**
 * The product catalogue: which currencies the gateway knows and how a product id maps to the
 * increments its prices and sizes are formatted to. Products themselves come from configuration;
 * this table only supplies the facts a product id cannot carry.
 */

export interface CurrencySpec {
  readonly id: string;
  readonly name: string;
  /** Smallest unit, as a decimal string ("0.01"). */
  readonly maxPrecision: string;
  /** Decimals of the increment used when this currency is the quote of a product. */
  readonly quoteDecimals: number;
  /** Decimals of the increment used when this currency is the base of a product. */
  readonly baseDecimals: number;
  /** Simulator's starting price of one unit, in USD. */
  readonly referenceUsd: number;
}

export interface ProductSpec {
  readonly id: string;
  readonly baseCurrency: string;
  readonly quoteCurrency: string;
  /** Number of decimals in quote_increment (prices are multiples of 10^-quoteDecimals). */
  readonly quoteDecimals: number;
  /** Number of decimals in base_increment (sizes are multiples of 10^-baseDecimals). */
  readonly baseDecimals: number;
  readonly quoteIncrement: string;
  readonly baseIncrement: string;
  readonly minMarketFunds: string;
  /** Price the simulator starts from, in quote currency. */
  readonly referencePrice: number;
  /** Simulator's typical order size, in base currency (about 2,000 USD). */
  readonly typicalOrderSize: number;
}

export const CURRENCIES: ReadonlyMap<string, CurrencySpec> = new Map(
  (
    [
      {
        id: 'USD',
        name: 'United States Dollar',
        maxPrecision: '0.01',
        quoteDecimals: 2,
        baseDecimals: 2,
        referenceUsd: 1,
      },
      {
        id: 'EUR',
        name: 'Euro',
        maxPrecision: '0.01',
        quoteDecimals: 2,
        baseDecimals: 2,
        referenceUsd: 1.08,
      },
      {
        id: 'GBP',
        name: 'British Pound',
        maxPrecision: '0.01',
        quoteDecimals: 2,
        baseDecimals: 2,
        referenceUsd: 1.27,
      },
      {
        id: 'USDC',
        name: 'USD Coin',
        maxPrecision: '0.000001',
        quoteDecimals: 2,
        baseDecimals: 2,
        referenceUsd: 1,
      },
      {
        id: 'USDT',
        name: 'Tether',
        maxPrecision: '0.000001',
        quoteDecimals: 2,
        baseDecimals: 2,
        referenceUsd: 1,
      },
      {
        id: 'BTC',
        name: 'Bitcoin',
        maxPrecision: '0.00000001',
        quoteDecimals: 5,
        baseDecimals: 8,
        referenceUsd: 64_000,
      },
      {
        id: 'ETH',
        name: 'Ether',
        maxPrecision: '0.00000001',
        quoteDecimals: 5,
        baseDecimals: 8,
        referenceUsd: 3_200,
      },
      {
        id: 'SOL',
        name: 'Solana',
        maxPrecision: '0.00000001',
        quoteDecimals: 4,
        baseDecimals: 8,
        referenceUsd: 150,
      },
      {
        id: 'LTC',
        name: 'Litecoin',
        maxPrecision: '0.00000001',
        quoteDecimals: 4,
        baseDecimals: 8,
        referenceUsd: 80,
      },
      {
        id: 'DOGE',
        name: 'Dogecoin',
        maxPrecision: '0.1',
        quoteDecimals: 5,
        baseDecimals: 1,
        referenceUsd: 0.15,
      },
    ] satisfies CurrencySpec[]
  ).map((c) => [c.id, c]),
);

export const PRODUCT_ID_PATTERN = /^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$/;

export function incrementString(decimals: number): string {
  return decimals === 0 ? '1' : `0.${'0'.repeat(decimals - 1)}1`;
}

/** Derives a product from its id, or explains why the id cannot be a product. */
export function productFromId(id: string): ProductSpec | string {
  if (!PRODUCT_ID_PATTERN.test(id)) return `"${id}" is not of the form BASE-QUOTE (e.g. BTC-USD)`;
  const [baseId, quoteId] = id.split('-') as [string, string];
  if (baseId === quoteId) return `"${id}" has the same base and quote currency`;
  const base = CURRENCIES.get(baseId);
  const quote = CURRENCIES.get(quoteId);
  if (!base || !quote) {
    const unknown = [base ? null : baseId, quote ? null : quoteId].filter(Boolean).join(', ');
    return `"${id}" uses unknown currency ${unknown} (known: ${[...CURRENCIES.keys()].join(', ')})`;
  }
  const referencePrice = base.referenceUsd / quote.referenceUsd;
  // Enough price decimals for at least 3 significant digits (DOGE-BTC trades in satoshis).
  const quoteDecimals = Math.max(quote.quoteDecimals, Math.ceil(-Math.log10(referencePrice)) + 3);
  return {
    id,
    baseCurrency: baseId,
    quoteCurrency: quoteId,
    quoteDecimals,
    baseDecimals: base.baseDecimals,
    quoteIncrement: incrementString(quoteDecimals),
    baseIncrement: incrementString(base.baseDecimals),
    minMarketFunds: quote.referenceUsd >= 0.5 ? '1' : incrementString(quoteDecimals),
    referencePrice,
    typicalOrderSize: 2_000 / base.referenceUsd,
  };
}
