/** `matchbook-gateway tail [URL] [PRODUCT ...] [--book PRODUCT] [--depth N]`, parsed and checked. */
export interface TailArgs {
  readonly url: string;
  readonly products: readonly string[];
  readonly bookProduct: string;
  readonly depth: number;
}

export const TAIL_USAGE = `usage: matchbook-gateway tail [URL] [PRODUCT ...] [--book PRODUCT] [--depth N]
  URL        the gateway, default ws://localhost:8080/
  PRODUCT    products whose tickers are shown, default BTC-USD
  --book     the product whose book is shown, default the first product
  --depth    book levels shown per side, 1 to 50, default 10
`;

const PRODUCT_ID = /^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$/;

export function parseTailArgs(
  argv: readonly string[],
): { ok: true; args: TailArgs } | { ok: false; error: string } {
  let url = 'ws://localhost:8080/';
  const products: string[] = [];
  let bookProduct: string | undefined;
  let depth = 10;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--book' || arg === '--depth') {
      const value = argv[++i];
      if (value === undefined) return { ok: false, error: `${arg} needs a value` };
      if (arg === '--book') bookProduct = value;
      else {
        depth = Number(value);
        if (!Number.isInteger(depth) || depth < 1 || depth > 50) {
          return { ok: false, error: `--depth ${JSON.stringify(value)}: expected an integer from 1 to 50` };
        }
      }
    } else if (arg.startsWith('ws://') || arg.startsWith('wss://')) {
      if (!URL.canParse(arg)) return { ok: false, error: `${JSON.stringify(arg)} is not a valid URL` };
      url = arg;
    } else if (PRODUCT_ID.test(arg)) {
      if (!products.includes(arg)) products.push(arg);
    } else {
      return {
        ok: false,
        error: `${JSON.stringify(arg.slice(0, 40))} is neither a ws:// URL nor a product id like BTC-USD`,
      };
    }
  }
  if (products.length === 0) products.push('BTC-USD');
  if (bookProduct !== undefined && !PRODUCT_ID.test(bookProduct)) {
    return {
      ok: false,
      error: `--book ${JSON.stringify(bookProduct.slice(0, 40))} is not a product id like BTC-USD`,
    };
  }
  const book = bookProduct ?? products[0]!;
  return { ok: true, args: { url, products, bookProduct: book, depth } };
}
