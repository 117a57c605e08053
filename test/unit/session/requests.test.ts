import { describe, expect, it } from 'vitest';
import type { ClientError } from '../../../src/errors/catalogue.js';
import {
  MAX_QUOTED_CHARS,
  type ProductCatalogue,
  parseRequest,
  type SubscriptionRequest,
} from '../../../src/session/requests.js';

const PRODUCTS = new Set(['BTC-USD', 'ETH-USD', 'ETH-EUR', 'ETH-BTC']);
const catalogue: ProductCatalogue = { hasProduct: (id) => PRODUCTS.has(id) };
const LIMITS = { maxProductsPerRequest: 50 };

function parse(message: unknown): SubscriptionRequest | ClientError {
  return parseRequest(typeof message === 'string' ? message : JSON.stringify(message), catalogue, LIMITS);
}

function request(message: unknown): SubscriptionRequest {
  const result = parse(message);
  if ('spec' in result) throw new Error(`expected a request, got ${JSON.stringify(result)}`);
  return result;
}

function failure(message: unknown): ClientError {
  const result = parse(message);
  if (!('spec' in result)) throw new Error(`expected an error, got ${JSON.stringify(result)}`);
  return result;
}

/** Problems as [code, message, reason]. */
function problems(result: SubscriptionRequest) {
  return result.problems.map((p) => [p.spec.code, p.spec.message, p.reason]);
}

describe('parseRequest: the message as a whole', () => {
  it('rejects malformed JSON', () => {
    for (const text of ['', '{', '{"type":"subscribe",}', "{'type':'subscribe'}", 'subscribe']) {
      const error = failure(text);
      expect(error.spec).toEqual({ code: 'malformed_json', message: 'Malformed JSON' });
      expect(error.reason).toMatch(/^message is not valid JSON: /);
    }
  });

  it('rejects JSON that is not an object', () => {
    const cases: Array<[string, string]> = [
      ['[]', 'expected a JSON object, got an array'],
      ['[{"type":"subscribe"}]', 'expected a JSON object, got an array'],
      ['null', 'expected a JSON object, got null'],
      ['42', 'expected a JSON object, got 42'],
      ['true', 'expected a JSON object, got true'],
      ['"subscribe"', 'expected a JSON object, got "subscribe"'],
    ];
    for (const [text, reason] of cases) {
      expect(failure(text)).toEqual({
        spec: { code: 'not_an_object', message: 'Message must be a JSON object' },
        reason,
      });
    }
  });

  it('rejects unknown or missing types', () => {
    const cases: Array<[unknown, string]> = [
      [{ channels: ['ticker'] }, 'type missing is not supported: expected "subscribe" or "unsubscribe"'],
      [{ type: 'sub' }, 'type "sub" is not supported: expected "subscribe" or "unsubscribe"'],
      [{ type: 'Subscribe' }, 'type "Subscribe" is not supported: expected "subscribe" or "unsubscribe"'],
      [{ type: 1 }, 'type 1 is not supported: expected "subscribe" or "unsubscribe"'],
      [{ type: null }, 'type null is not supported: expected "subscribe" or "unsubscribe"'],
      [{ type: ['subscribe'] }, 'type an array is not supported: expected "subscribe" or "unsubscribe"'],
      [{ type: {} }, 'type an object is not supported: expected "subscribe" or "unsubscribe"'],
    ];
    for (const [message, reason] of cases) {
      expect(failure(message)).toEqual({
        spec: { code: 'unknown_type', message: 'Unknown message type' },
        reason,
      });
    }
  });

  it('reports "No channels provided" for missing or empty channels', () => {
    for (const message of [
      { type: 'subscribe', product_ids: ['BTC-USD'] },
      { type: 'subscribe', product_ids: ['BTC-USD'], channels: [] },
    ]) {
      expect(failure(message)).toEqual({
        spec: { code: 'empty_subscription', message: 'Failed to subscribe' },
        reason: 'No channels provided',
      });
    }
    expect(failure({ type: 'unsubscribe', channels: [] })).toEqual({
      spec: { code: 'empty_subscription', message: 'Failed to unsubscribe' },
      reason: 'No channels provided',
    });
  });

  it('rejects channels and product_ids of the wrong shape', () => {
    expect(failure({ type: 'subscribe', product_ids: ['BTC-USD'], channels: 'ticker' })).toEqual({
      spec: { code: 'invalid_field', message: 'Failed to subscribe' },
      reason: 'channels must be an array',
    });
    expect(failure({ type: 'subscribe', channels: { name: 'ticker' } })).toMatchObject({
      reason: 'channels must be an array',
    });
    for (const productIds of ['BTC-USD', [1], ['BTC-USD', null], {}]) {
      expect(failure({ type: 'subscribe', product_ids: productIds, channels: ['ticker'] })).toEqual({
        spec: { code: 'invalid_field', message: 'Failed to subscribe' },
        reason: 'product_ids must be an array of strings',
      });
    }
  });
});

describe('parseRequest: channels and products', () => {
  it('parses the plain form', () => {
    expect(
      request({
        type: 'subscribe',
        product_ids: ['ETH-USD', 'BTC-USD'],
        channels: ['ticker', 'level2_batch'],
      }),
    ).toEqual({
      type: 'subscribe',
      channels: [
        { channel: 'ticker', productIds: ['ETH-USD', 'BTC-USD'] },
        { channel: 'level2_batch', productIds: ['ETH-USD', 'BTC-USD'] },
      ],
      problems: [],
    });
  });

  it('accepts every channel the gateway serves', () => {
    const channels = ['heartbeat', 'status', 'ticker', 'ticker_batch', 'level2', 'level2_batch', 'matches'];
    const result = request({ type: 'subscribe', product_ids: ['BTC-USD'], channels });
    expect(result.channels.map((c) => c.channel)).toEqual(channels);
    expect(result.problems).toEqual([]);
  });

  it('adds the root product_ids to channels that list their own (the documented example)', () => {
    const result = request({
      type: 'subscribe',
      product_ids: ['ETH-USD', 'ETH-EUR'],
      channels: ['level2', 'heartbeat', { name: 'ticker', product_ids: ['ETH-BTC', 'ETH-USD'] }],
    });
    expect(result.problems).toEqual([]);
    expect(result.channels.map((c) => c.channel)).toEqual(['level2', 'heartbeat', 'ticker']);
    expect(result.channels[0]?.productIds).toEqual(['ETH-USD', 'ETH-EUR']);
    expect(result.channels[1]?.productIds).toEqual(['ETH-USD', 'ETH-EUR']);
    // Each product once, whatever the order the two lists are joined in.
    const ticker = result.channels[2]?.productIds ?? [];
    expect(ticker).toHaveLength(3);
    expect([...ticker].sort()).toEqual(['ETH-BTC', 'ETH-EUR', 'ETH-USD']);
  });

  it('accepts channel objects with only their own products, and removes duplicates', () => {
    const result = request({
      type: 'subscribe',
      channels: [{ name: 'heartbeat', product_ids: ['ETH-EUR', 'ETH-EUR', 'BTC-USD'] }],
    });
    expect(result.channels).toEqual([{ channel: 'heartbeat', productIds: ['ETH-EUR', 'BTC-USD'] }]);
  });

  it('maps the old batch channel names to the current ones', () => {
    const result = request({
      type: 'subscribe',
      product_ids: ['BTC-USD'],
      channels: ['ticker_1000', 'level2_50'],
    });
    expect(result.channels).toEqual([
      { channel: 'ticker_batch', productIds: ['BTC-USD'] },
      { channel: 'level2_batch', productIds: ['BTC-USD'] },
    ]);
    expect(
      request({ type: 'subscribe', channels: [{ name: 'level2_50', product_ids: ['ETH-USD'] }] }).channels,
    ).toEqual([{ channel: 'level2_batch', productIds: ['ETH-USD'] }]);
  });

  it('subscribes to status without products, and ignores products given for it', () => {
    expect(request({ type: 'subscribe', channels: [{ name: 'status' }] })).toEqual({
      type: 'subscribe',
      channels: [{ channel: 'status', productIds: [] }],
      problems: [],
    });
    expect(request({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['status'] }).channels).toEqual([
      { channel: 'status', productIds: [] },
    ]);
  });

  it('reports an unknown channel and keeps the others', () => {
    const result = request({
      type: 'subscribe',
      product_ids: ['BTC-USD'],
      channels: ['full', 'ticker', 'level3'],
    });
    expect(result.channels).toEqual([{ channel: 'ticker', productIds: ['BTC-USD'] }]);
    expect(result.problems.map((p) => [p.spec.code, p.spec.message])).toEqual([
      ['unknown_channel', 'Failed to subscribe'],
      ['unknown_channel', 'Failed to subscribe'],
    ]);
  });

  // The feed writes the name as it is: "not_a_valid_channel is not a valid channel" (docs reference §1.5, §5).
  it('words an unknown channel name as the feed does', () => {
    const result = request({
      type: 'subscribe',
      product_ids: ['BTC-USD'],
      channels: ['not_a_valid_channel'],
    });
    expect(result.problems.map((p) => p.reason)).toEqual(['not_a_valid_channel is not a valid channel']);
  });

  it('describes channel entries that are not names', () => {
    const result = request({
      type: 'subscribe',
      product_ids: ['BTC-USD'],
      channels: [5, null, ['ticker'], { product_ids: ['BTC-USD'] }, { name: 7 }, { name: 'x'.repeat(200) }],
    });
    expect(result.channels).toEqual([]);
    expect(result.problems.map((p) => p.spec.code)).toEqual(Array(6).fill('unknown_channel'));
    const reasons = result.problems.map((p) => p.reason);
    expect(reasons.slice(0, 5)).toEqual([
      '5 is not a valid channel',
      'null is not a valid channel',
      'an array is not a valid channel',
      'missing is not a valid channel',
      '7 is not a valid channel',
    ]);
    // Client text in reasons is kept short.
    expect(reasons[5]).toMatch(/^x+\.\.\. is not a valid channel$/);
    expect(reasons[5]?.length).toBeLessThanOrEqual(64 + ' is not a valid channel'.length);
  });

  it('reports a channel object whose product_ids is not a list of strings and skips that channel', () => {
    const result = request({
      type: 'subscribe',
      product_ids: ['BTC-USD'],
      channels: [{ name: 'ticker', product_ids: 'ETH-USD' }, 'matches'],
    });
    expect(result.channels).toEqual([{ channel: 'matches', productIds: ['BTC-USD'] }]);
    expect(problems(result)).toEqual([
      ['invalid_field', 'Failed to subscribe', 'product_ids of channel "ticker" must be an array of strings'],
    ]);
  });

  it('reports malformed product ids without looking them up', () => {
    const lookedUp: string[] = [];
    const spy: ProductCatalogue = {
      hasProduct: (id) => {
        lookedUp.push(id);
        return PRODUCTS.has(id);
      },
    };
    const long = `${'A'.repeat(10)}-${'B'.repeat(200)}`;
    const result = parseRequest(
      JSON.stringify({
        type: 'subscribe',
        product_ids: ['btc-usd', 'BTCUSD', 'BTC-USD', 'B-USD', ' BTC-USD', long, ''],
        channels: ['ticker'],
      }),
      spy,
      LIMITS,
    );
    expect(lookedUp).toEqual(['BTC-USD']);
    expect(result).toMatchObject({ channels: [{ channel: 'ticker', productIds: ['BTC-USD'] }] });
    const reported = (result as SubscriptionRequest).problems;
    expect(reported.map((p) => p.spec.code)).toEqual(Array(6).fill('malformed_product_id'));
    expect(reported.slice(0, 2).map((p) => p.reason)).toEqual([
      '"btc-usd" is not a valid product id',
      '"BTCUSD" is not a valid product id',
    ]);
    expect(reported[4]?.reason).toBe(`${JSON.stringify(long).slice(0, 61)}... is not a valid product id`);
  });

  it('reports unknown products as the feed does and subscribes the valid ones', () => {
    const result = request({ type: 'subscribe', product_ids: ['BTC-USD', 'XRP-USD'], channels: ['ticker'] });
    expect(result.channels).toEqual([{ channel: 'ticker', productIds: ['BTC-USD'] }]);
    expect(problems(result)).toEqual([
      ['unknown_product', 'Failed to subscribe', 'XRP-USD is not a valid product'],
    ]);
  });

  it('reports a product channel left with no valid product', () => {
    const result = request({
      type: 'subscribe',
      product_ids: ['XRP-USD'],
      channels: ['heartbeat', 'status'],
    });
    expect(result.channels).toEqual([{ channel: 'status', productIds: [] }]);
    expect(problems(result)).toEqual([
      ['unknown_product', 'Failed to subscribe', 'XRP-USD is not a valid product'],
      [
        'empty_subscription',
        'Failed to subscribe',
        'You need to specify at least one product ID for channel heartbeat',
      ],
    ]);
    expect(problems(request({ type: 'subscribe', channels: ['ticker'] }))).toEqual([
      [
        'empty_subscription',
        'Failed to subscribe',
        'You need to specify at least one product ID for channel ticker',
      ],
    ]);
  });

  it('accepts the authentication fields and ignores them', () => {
    const plain = { type: 'subscribe', product_ids: ['BTC-USD'], channels: ['level2', 'heartbeat'] };
    const signed = {
      ...plain,
      signature: 'c2lnbmF0dXJl',
      key: 'b8b7c0a9f2e1d3c4',
      passphrase: 'hunter2',
      timestamp: '1709294400.123',
    };
    expect(request(signed)).toEqual(request(plain));
  });

  it('ignores unknown extra fields', () => {
    const plain = { type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker'] };
    expect(request({ ...plain, id: 1, extra: { nested: true } })).toEqual(request(plain));
  });

  it('parses unsubscribe the same way, with no products meaning the whole channel', () => {
    expect(request({ type: 'unsubscribe', channels: ['heartbeat'] })).toEqual({
      type: 'unsubscribe',
      channels: [{ channel: 'heartbeat', productIds: [] }],
      problems: [],
    });
    expect(
      request({ type: 'unsubscribe', product_ids: ['ETH-USD', 'ETH-EUR'], channels: ['ticker'] }),
    ).toEqual({
      type: 'unsubscribe',
      channels: [{ channel: 'ticker', productIds: ['ETH-USD', 'ETH-EUR'] }],
      problems: [],
    });
    expect(problems(request({ type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['nope'] }))).toEqual([
      ['unknown_channel', 'Failed to unsubscribe', expect.stringContaining('is not a valid channel')],
    ]);
  });
});

describe('parseRequest: unsubscribe naming only invalid products', () => {
  it('keeps no channel, so nothing reads as "every product of the channel"', () => {
    const root = request({ type: 'unsubscribe', product_ids: ['XRP-USD'], channels: ['ticker'] });
    expect(root.channels).toEqual([]);
    expect(problems(root)).toEqual([
      ['unknown_product', 'Failed to unsubscribe', 'XRP-USD is not a valid product'],
    ]);
    const own = request({
      type: 'unsubscribe',
      channels: [{ name: 'matches', product_ids: ['btc-usd'] }, 'heartbeat'],
    });
    expect(own.channels).toEqual([{ channel: 'heartbeat', productIds: [] }]);
    expect(own.problems.map((p) => p.spec.code)).toEqual(['malformed_product_id']);
  });

  it('keeps the valid products when only some are invalid', () => {
    const result = request({
      type: 'unsubscribe',
      product_ids: ['XRP-USD', 'BTC-USD'],
      channels: ['ticker'],
    });
    expect(result.channels).toEqual([{ channel: 'ticker', productIds: ['BTC-USD'] }]);
  });
});

describe('parseRequest: hostile keys', () => {
  it('does not take type from the prototype', () => {
    expect(failure('{"__proto__":{"type":"subscribe"},"channels":["ticker"]}').spec.code).toBe(
      'unknown_type',
    );
  });

  it('treats __proto__ and constructor as plain data', () => {
    const result = request(
      '{"type":"subscribe","product_ids":["BTC-USD"],"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},' +
        '"channels":["constructor","__proto__","toString","hasOwnProperty",{"name":"constructor"},{"name":"ticker","__proto__":{"product_ids":["ETH-USD"]}}]}',
    );
    expect(result.channels).toEqual([{ channel: 'ticker', productIds: ['BTC-USD'] }]);
    expect(result.problems.map((p) => p.spec.code)).toEqual(Array(5).fill('unknown_channel'));
    expect(result.problems.map((p) => p.reason).join('\n')).toContain('constructor');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('treats __proto__ and constructor product ids as malformed', () => {
    const result = request({
      type: 'subscribe',
      product_ids: ['__proto__', 'constructor', 'toString', 'BTC-USD'],
      channels: ['ticker'],
    });
    expect(result.channels).toEqual([{ channel: 'ticker', productIds: ['BTC-USD'] }]);
    expect(result.problems.map((p) => p.spec.code)).toEqual(Array(3).fill('malformed_product_id'));
  });

  it('does not read channels or product_ids inherited from the prototype', () => {
    expect(
      failure('{"type":"subscribe","__proto__":{"channels":["ticker"],"product_ids":["BTC-USD"]}}'),
    ).toMatchObject({
      reason: 'No channels provided',
    });
  });
});

describe('parseRequest: client text quoted in a reason is capped', () => {
  const long = 'x'.repeat(4_000);
  const quoted = `"${'x'.repeat(MAX_QUOTED_CHARS - 4)}...`;

  it.each<[string, unknown, string]>([
    ['a long type', { type: long }, `type ${quoted} is not supported: expected "subscribe" or "unsubscribe"`],
    ['a long JSON string', JSON.stringify(long), `expected a JSON object, got ${quoted}`],
    [
      'a long channel name',
      { type: 'subscribe', channels: [long] },
      `${long.slice(0, 61)}... is not a valid channel`,
    ],
    [
      'a long name of a channel with bad product_ids',
      { type: 'subscribe', channels: [{ name: long, product_ids: 'BTC-USD' }] },
      `product_ids of channel ${quoted} must be an array of strings`,
    ],
    [
      'a long product id',
      { type: 'subscribe', product_ids: [long], channels: ['ticker'] },
      `${quoted} is not a valid product id`,
    ],
  ])('%s', (_name, input, reason) => {
    const result = parse(input);
    const error = 'spec' in result ? result : result.problems[0]!;
    expect(error.reason).toBe(reason);
  });

  it('a long malformed JSON text', () => {
    const error = failure(`{"type":"${long}`);
    expect(error.reason.length).toBeLessThanOrEqual('message is not valid JSON: '.length + MAX_QUOTED_CHARS);
    expect(error.reason).toMatch(/^message is not valid JSON: /);
  });

  it('quotes text up to the cap in full', () => {
    const exact = 'y'.repeat(MAX_QUOTED_CHARS - 2);
    expect(failure({ type: exact }).reason).toBe(
      `type "${exact}" is not supported: expected "subscribe" or "unsubscribe"`,
    );
  });
});
