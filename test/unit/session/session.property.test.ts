import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_ERRORS } from '../../../src/errors/catalogue.js';
import { CHANNELS, type Channel } from '../../../src/market/types.js';
import type { ProductCatalogue } from '../../../src/session/requests.js';
import {
  type ClientConnection,
  ClientSession,
  type SessionLimits,
  type SessionObserver,
} from '../../../src/session/session.js';

/**
 * Property-based tests of the inbound protocol handler: ClientSession driven with arbitrary text,
 * arbitrary JSON and near-valid requests (wrong types, huge arrays, deep nesting, unicode,
 * prototype-pollution keys), checked against a model of the subscription set.
 */

type Entry =
  | { readonly kind: 'send'; readonly payload: string }
  | { readonly kind: 'attach' | 'detach'; readonly channel: Channel; readonly productId: string };

/** Records everything the session does to its socket, in order. */
class RecordingConnection implements ClientConnection {
  readonly log: Entry[] = [];

  sendControl(payload: string): void {
    this.log.push({ kind: 'send', payload });
  }

  attach(channel: Channel, productId: string): void {
    this.log.push({ kind: 'attach', channel, productId });
  }

  detach(channel: Channel, productId: string): void {
    this.log.push({ kind: 'detach', channel, productId });
  }
}

class RecordingObserver implements SessionObserver {
  readonly deltas: Array<[Channel, number]> = [];
  readonly errors: string[] = [];

  subscriptionsChanged(channel: Channel, delta: number): void {
    this.deltas.push([channel, delta]);
  }

  errorSent(code: string): void {
    this.errors.push(code);
  }

  total(): number {
    return this.deltas.reduce((sum, [, delta]) => sum + delta, 0);
  }
}

const PRODUCTS = ['BTC-USD', 'ETH-USD', 'ETH-BTC', 'SOL-USD'] as const;
const KNOWN_PRODUCTS = new Set<string>(PRODUCTS);
/** Shared by every session of a test, as the hub is shared by every connection. */
const catalogue: ProductCatalogue = { hasProduct: (id) => KNOWN_PRODUCTS.has(id) };
const LIMITS: SessionLimits = { maxProductsPerRequest: 50, maxSubscriptions: 200 };

const CHANNEL_SET = new Set<string>(CHANNELS);
const ERROR_CODES = new Set<string>(Object.values(CLIENT_ERRORS).map((spec) => spec.code));
const ERROR_MESSAGES = new Set<string>([
  ...Object.values(CLIENT_ERRORS).map((spec) => spec.message),
  'Failed to unsubscribe',
]);
/** Client text quoted in a reason is truncated to 64 characters; the rest of a reason is ours. */
const MAX_REASON_LENGTH = 256;
const POLLUTION_KEYS = ['__proto__', 'constructor', 'prototype'] as const;
/** What the generated inputs provoked (error codes and 'subscriptions'), so the test shows it reached them. */
const provoked = new Map<string, number>();

/**
 * The model: channel → products in subscription order, maintained from the attach/detach calls
 * the session makes, with the same ordering rules the `subscriptions` reply documents.
 */
type Model = Map<string, string[]>;

interface Harness {
  readonly session: ClientSession;
  readonly connection: RecordingConnection;
  readonly observer: RecordingObserver;
  readonly model: Model;
  readonly limits: SessionLimits;
  subscribedEver: boolean;
}

function harness(limits: SessionLimits = LIMITS): Harness {
  const connection = new RecordingConnection();
  const observer = new RecordingObserver();
  return {
    session: new ClientSession(connection, catalogue, observer, limits),
    connection,
    observer,
    model: new Map(),
    limits,
    subscribedEver: false,
  };
}

function modelSize(model: Model): number {
  let size = 0;
  for (const products of model.values()) size += products.length;
  return size;
}

function modelReply(model: Model): unknown {
  return {
    type: 'subscriptions',
    channels: [...model].map(([name, ids]) => ({ name, product_ids: name === 'status' ? [] : ids })),
  };
}

function parseJson(payload: string): Record<string, unknown> {
  let parsed: unknown;
  expect(() => {
    parsed = JSON.parse(payload);
  }, `the gateway sent invalid JSON: ${payload}`).not.toThrow();
  expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true);
  return parsed as Record<string, unknown>;
}

function checkError(message: Record<string, unknown>): void {
  expect(Object.keys(message).sort()).toEqual(['code', 'message', 'reason', 'type']);
  expect(message.type).toBe('error');
  expect(typeof message.message).toBe('string');
  expect(ERROR_MESSAGES.has(message.message as string), `message ${String(message.message)}`).toBe(true);
  expect(typeof message.reason).toBe('string');
  expect((message.reason as string).length).toBeLessThanOrEqual(MAX_REASON_LENGTH);
  expect(typeof message.code).toBe('string');
  expect(ERROR_CODES.has(message.code as string), `code ${String(message.code)}`).toBe(true);
}

function checkSubscriptions(message: Record<string, unknown>, limits: SessionLimits): void {
  expect(Object.keys(message).sort()).toEqual(['channels', 'type']);
  expect(Array.isArray(message.channels)).toBe(true);
  const names = new Set<string>();
  let pairs = 0;
  for (const channel of message.channels as unknown[]) {
    expect(typeof channel === 'object' && channel !== null && !Array.isArray(channel)).toBe(true);
    const { name, product_ids: ids } = channel as Record<string, unknown>;
    expect(Object.keys(channel as object).sort()).toEqual(['name', 'product_ids']);
    expect(typeof name).toBe('string');
    expect(CHANNEL_SET.has(name as string), `channel ${String(name)}`).toBe(true);
    expect(names.has(name as string), `channel ${String(name)} listed twice`).toBe(false);
    names.add(name as string);
    expect(Array.isArray(ids)).toBe(true);
    const products = ids as unknown[];
    if (name === 'status') expect(products).toEqual([]);
    for (const id of products) {
      expect(typeof id).toBe('string');
      expect(KNOWN_PRODUCTS.has(id as string), `product ${String(id)}`).toBe(true);
    }
    expect(new Set(products).size).toBe(products.length);
    pairs += name === 'status' ? 1 : products.length;
    // A channel that lost its last product disappears from the list.
    if (name !== 'status') expect(products.length).toBeGreaterThan(0);
  }
  expect(pairs).toBeLessThanOrEqual(limits.maxSubscriptions);
}

/**
 * Sends one text frame and checks every property of the reply against the model; updates the model.
 * Returns the parsed messages sent.
 */
function sendText(h: Harness, text: string): Array<Record<string, unknown>> {
  const start = h.connection.log.length;
  const errorsBefore = h.observer.errors.length;
  expect(() => h.session.handleText(text)).not.toThrow();
  const entries = h.connection.log.slice(start);

  const sends: Array<Record<string, unknown>> = [];
  let replyAt = -1;
  for (const [index, entry] of entries.entries()) {
    if (entry.kind !== 'send') continue;
    const message = parseJson(entry.payload);
    sends.push(message);
    const label = String(message.code ?? message.type);
    provoked.set(label, (provoked.get(label) ?? 0) + 1);
    if (message.type === 'subscriptions') {
      expect(replyAt, 'at most one subscriptions reply per request').toBe(-1);
      replyAt = index;
      checkSubscriptions(message, h.limits);
    } else {
      expect(message.type).toBe('error');
      expect(replyAt, 'errors come before the subscriptions reply').toBe(-1);
      checkError(message);
    }
  }
  expect(sends.length, 'every request is answered').toBeGreaterThanOrEqual(1);
  // The observer saw exactly the errors the client saw.
  expect(h.observer.errors.slice(errorsBefore)).toEqual(
    sends.filter((m) => m.type === 'error').map((m) => m.code),
  );

  // Attach/detach only change the set as the model allows, and only for effective requests.
  for (const [index, entry] of entries.entries()) {
    if (entry.kind === 'send') continue;
    expect(replyAt, `${entry.kind} without a subscriptions reply`).toBeGreaterThanOrEqual(0);
    const key = entry.channel === 'status' ? '' : entry.productId;
    const held = h.model.get(entry.channel);
    if (entry.kind === 'attach') {
      expect(index, 'attaches come after the subscriptions reply').toBeGreaterThan(replyAt);
      expect(held?.includes(key) ?? false, `attach of a held pair ${entry.channel}:${key}`).toBe(false);
      if (held) held.push(key);
      else h.model.set(entry.channel, [key]);
    } else {
      expect(held?.includes(key), `detach of a pair not held ${entry.channel}:${key}`).toBe(true);
      held!.splice(held!.indexOf(key), 1);
      if (held!.length === 0) h.model.delete(entry.channel);
    }
  }
  if (replyAt >= 0) {
    const reply = (entries[replyAt] as { payload: string }).payload;
    expect(JSON.parse(reply)).toEqual(modelReply(h.model));
    const parsed = JSON.parse(text) as { type?: unknown };
    if (parsed.type === 'subscribe') h.subscribedEver = true;
  }
  expect(modelSize(h.model)).toBeLessThanOrEqual(h.limits.maxSubscriptions);
  expect(h.observer.total()).toBe(modelSize(h.model));
  expect(h.session.hasSubscribed).toBe(h.subscribedEver);
  return sends;
}

// --- Arbitraries ---------------------------------------------------------------------------------

/** A JSON document built as text, so `__proto__` can be an own key and keys may repeat. */
type Doc =
  | { readonly t: 'raw'; readonly v: unknown }
  | { readonly t: 'arr'; readonly items: readonly Doc[] }
  | { readonly t: 'obj'; readonly entries: ReadonlyArray<readonly [string, Doc]> }
  | { readonly t: 'deep'; readonly depth: number; readonly open: '[' | '{' };

function render(doc: Doc): string {
  switch (doc.t) {
    case 'raw':
      return JSON.stringify(doc.v) ?? 'null';
    case 'arr':
      return `[${doc.items.map(render).join(',')}]`;
    case 'obj':
      return `{${doc.entries.map(([k, v]) => `${JSON.stringify(k)}:${render(v)}`).join(',')}}`;
    case 'deep':
      return doc.open === '['
        ? `${'['.repeat(doc.depth)}${']'.repeat(doc.depth)}`
        : `${'{"a":'.repeat(doc.depth)}1${'}'.repeat(doc.depth)}`;
  }
}

const raw = (v: unknown): Doc => ({ t: 'raw', v });
const arr = (items: readonly Doc[]): Doc => ({ t: 'arr', items });
const obj = (entries: ReadonlyArray<readonly [string, Doc]>): Doc => ({ t: 'obj', entries });

const unicode = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ maxLength: 12 }),
);

const pollutionDoc: fc.Arbitrary<Doc> = fc.oneof(
  fc.constant(obj([['polluted', raw(true)]])),
  fc.constant(obj([['prototype', obj([['polluted', raw(true)]])]])),
  fc.constant(obj([['__proto__', obj([['polluted', raw('yes')]])]])),
);

/** Keys that try to reach Object.prototype, or collide with the request's own fields. */
const hostileKey = fc.oneof(
  fc.constantFrom(...POLLUTION_KEYS, 'toString', 'hasOwnProperty', 'valueOf', 'name', 'product_ids', 'type'),
  unicode,
);

const weirdDoc: fc.Arbitrary<Doc> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).map(raw),
  fc
    .record({ depth: fc.integer({ min: 1, max: 3000 }), open: fc.constantFrom('[' as const, '{' as const) })
    .map(({ depth, open }): Doc => ({ t: 'deep', depth, open })),
  pollutionDoc,
  fc.array(fc.tuple(hostileKey, pollutionDoc), { maxLength: 3 }).map(obj),
);

const channelName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...CHANNELS, 'ticker_1000', 'level2_50') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      ...POLLUTION_KEYS,
      'toString',
      'hasOwnProperty',
      'full',
      'level3',
      'user',
      'LEVEL2',
      ' level2',
      'level2\u0000',
      '',
    ),
  },
  { weight: 1, arbitrary: unicode },
);

const productId = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...PRODUCTS) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      ...POLLUTION_KEYS,
      'XRP-USD',
      'DOGE-GBP',
      'btc-usd',
      'BTC-USD ',
      'BTC-USD\n',
      'BTC\u2011USD',
      'ＢＴＣ-USD',
      'AAAAAAAAAA-BBBBBBBBBB',
      'AAAAAAAAAAA-BB',
    ),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$/) },
  { weight: 1, arbitrary: unicode },
  { weight: 1, arbitrary: fc.string({ minLength: 60, maxLength: 400 }) },
);

const productList: fc.Arbitrary<Doc> = fc.oneof(
  { weight: 12, arbitrary: fc.array(productId.map(raw), { minLength: 1, maxLength: 6 }).map(arr) },
  // Past maxProductsPerRequest (50), alone or together with the channels' lists.
  { weight: 1, arbitrary: fc.array(productId.map(raw), { minLength: 20, maxLength: 120 }).map(arr) },
  // Wrong types: a string, numbers mixed in, nested arrays, objects.
  {
    weight: 2,
    arbitrary: fc.oneof(
      productId.map(raw),
      fc.array(fc.oneof(productId.map(raw), weirdDoc), { minLength: 1, maxLength: 4 }).map(arr),
      weirdDoc,
    ),
  },
);

const channelEntry: fc.Arbitrary<Doc> = fc.oneof(
  { weight: 5, arbitrary: channelName.map(raw) },
  {
    weight: 5,
    arbitrary: fc
      .record(
        {
          name: fc.oneof({ weight: 5, arbitrary: channelName.map(raw) }, { weight: 1, arbitrary: weirdDoc }),
          product_ids: productList,
          extra: fc.array(fc.tuple(hostileKey, weirdDoc), { maxLength: 2 }),
        },
        { requiredKeys: ['name', 'extra'] },
      )
      .map(({ name, product_ids, extra }) =>
        obj([['name', name], ...(product_ids ? [['product_ids', product_ids] as const] : []), ...extra]),
      ),
  },
  { weight: 1, arbitrary: weirdDoc },
);

const channelList: fc.Arbitrary<Doc> = fc.oneof(
  { weight: 10, arbitrary: fc.array(channelEntry, { minLength: 1, maxLength: 5 }).map(arr) },
  // Past the 32-entry cap.
  { weight: 1, arbitrary: fc.array(channelEntry, { minLength: 30, maxLength: 40 }).map(arr) },
  { weight: 1, arbitrary: weirdDoc },
);

/** Subscribe/unsubscribe requests, mostly well-formed, with hostile parts mixed in. */
const request: fc.Arbitrary<Doc> = fc
  .record(
    {
      type: fc.oneof(
        { weight: 12, arbitrary: fc.constantFrom('subscribe', 'unsubscribe').map(raw) },
        { weight: 1, arbitrary: fc.constantFrom('Subscribe', 'subscribe ', ...POLLUTION_KEYS).map(raw) },
        { weight: 1, arbitrary: weirdDoc },
      ),
      channels: channelList,
      product_ids: productList,
      extra: fc.array(fc.tuple(hostileKey, weirdDoc), { maxLength: 3 }),
      extraFirst: fc.boolean(),
    },
    { requiredKeys: ['type', 'extra', 'extraFirst'] },
  )
  .map(({ type, channels, product_ids, extra, extraFirst }) => {
    const fields: Array<readonly [string, Doc]> = [['type', type]];
    if (channels) fields.push(['channels', channels]);
    if (product_ids) fields.push(['product_ids', product_ids]);
    return obj(extraFirst ? [...extra, ...fields] : [...fields, ...extra]);
  });

const requestText = request.map(render);

/** Near-valid text: a request cut short, or with one character replaced or inserted. */
const garbledText = fc
  .tuple(requestText, fc.nat(), fc.constantFrom('cut', 'replace', 'insert'), unicode)
  .map(([text, at, how, junk]) => {
    const i = at % (text.length + 1);
    if (how === 'cut') return text.slice(0, i);
    if (how === 'replace') return text.slice(0, i) + junk + text.slice(i + 1);
    return text.slice(0, i) + junk + text.slice(i);
  });

const anyText = fc.oneof(
  { weight: 6, arbitrary: requestText },
  { weight: 2, arbitrary: garbledText },
  { weight: 1, arbitrary: fc.json() },
  { weight: 1, arbitrary: unicode },
);

// --- Prototype pollution guard ------------------------------------------------------------------

const protoNames = (target: object) => Object.getOwnPropertyNames(target).sort();
const guarded: Array<[string, object, string[]]> = [];

function expectNoPollution(): void {
  const probe = {} as Record<string, unknown>;
  expect(probe.polluted).toBeUndefined();
  expect(Object.getPrototypeOf(probe)).toBe(Object.prototype);
  expect(Object.keys(Object.prototype)).toEqual([]);
  for (const [name, target, names] of guarded) expect(protoNames(target), name).toEqual(names);
  expect({}.toString()).toBe('[object Object]');
  expect(Object.hasOwn({}, 'polluted')).toBe(false);
}

beforeAll(() => {
  guarded.push(
    ['Object.prototype', Object.prototype, protoNames(Object.prototype)],
    ['Array.prototype', Array.prototype, protoNames(Array.prototype)],
    ['Map.prototype', Map.prototype, protoNames(Map.prototype)],
    ['Set.prototype', Set.prototype, protoNames(Set.prototype)],
    ['Function.prototype', Function.prototype, protoNames(Function.prototype)],
  );
});
afterAll(() => expectNoPollution());

// --- Properties -----------------------------------------------------------------------------------

describe('ClientSession under arbitrary input (fast-check)', () => {
  it('arbitrary strings (grapheme, binary and UTF-16 units) never throw and are answered', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'grapheme', maxLength: 200 }),
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.string({ maxLength: 200 }),
        ),
        (text) => {
          const h = harness();
          const sent = sendText(h, text);
          // Text that is not a request is answered with exactly one error and changes nothing.
          if (sent.every((m) => m.type === 'error')) expect(h.model.size).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
    expectNoPollution();
  });

  it('arbitrary JSON values never throw; anything but an object is not_an_object', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const h = harness();
        const text = JSON.stringify(value) ?? 'null';
        const sent = sendText(h, text);
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          expect(sent).toHaveLength(1);
          expect(sent[0]!.code).toBe('not_an_object');
        }
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), (text) => {
        sendText(harness(), text);
      }),
      { numRuns: 200 },
    );
    expectNoPollution();
  });

  it('sequences of near-valid requests keep the state within known channels, products and limits', () => {
    fc.assert(
      fc.property(fc.array(anyText, { minLength: 1, maxLength: 25 }), (texts) => {
        const h = harness();
        for (const text of texts) sendText(h, text);
        expectNoPollution();
        // Releasing the session returns every subscription it held.
        h.session.dispose();
        expect(h.observer.total()).toBe(0);
      }),
      { numRuns: 150 },
    );
    // The generators reach every request error and plenty of effective requests.
    for (const code of [
      'subscriptions',
      'malformed_json',
      'not_an_object',
      'unknown_type',
      'invalid_field',
      'unknown_channel',
      'malformed_product_id',
      'unknown_product',
      'empty_subscription',
      'too_many_products',
    ]) {
      expect(provoked.get(code) ?? 0, code).toBeGreaterThan(code === 'subscriptions' ? 100 : 0);
    }
  });

  it('a small maxSubscriptions is never exceeded, and too_many_subscriptions changes nothing', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(requestText, { minLength: 1, maxLength: 25 }),
        (maxSubscriptions, texts) => {
          const h = harness({ maxProductsPerRequest: 50, maxSubscriptions });
          for (const text of texts) {
            const before = modelReply(h.model);
            const sent = sendText(h, text);
            if (sent.some((m) => m.code === 'too_many_subscriptions')) {
              expect(sent.some((m) => m.type === 'subscriptions')).toBe(false);
              expect(modelReply(h.model)).toEqual(before);
            }
          }
        },
      ),
      { numRuns: 120 },
    );
    expect(provoked.get('too_many_subscriptions') ?? 0).toBeGreaterThan(0);
  });

  it('binary frames always get exactly one binary_frame error', () => {
    fc.assert(
      fc.property(fc.array(anyText, { maxLength: 5 }), fc.integer({ min: 1, max: 5 }), (texts, binaries) => {
        const h = harness();
        for (const text of texts) sendText(h, text);
        const before = modelReply(h.model);
        for (let i = 0; i < binaries; i++) {
          const start = h.connection.log.length;
          h.session.handleBinary();
          const entries = h.connection.log.slice(start);
          expect(entries).toHaveLength(1);
          const message = parseJson((entries[0] as { payload: string }).payload);
          checkError(message);
          expect(message.code).toBe('binary_frame');
        }
        expect(modelReply(h.model)).toEqual(before);
      }),
      { numRuns: 100 },
    );
  });

  it('huge arrays and deep nesting are refused with one error, without per-item work', () => {
    const many = (n: number, item: string) => `[${Array.from({ length: n }, () => item).join(',')}]`;
    const cases: Array<[string, string]> = [
      [
        `{"type":"subscribe","channels":["level2"],"product_ids":${many(100_000, '"BTC-USD"')}}`,
        'too_many_products',
      ],
      [
        `{"type":"subscribe","channels":[{"name":"level2","product_ids":${many(100_000, '"constructor"')}}]}`,
        'too_many_products',
      ],
      [
        `{"type":"subscribe","product_ids":["BTC-USD"],"channels":${many(100_000, '"level2"')}}`,
        'invalid_field',
      ],
      [
        `{"type":"subscribe","product_ids":["BTC-USD"],"channels":[${'['.repeat(50_000)}${']'.repeat(50_000)}]}`,
        'unknown_channel',
      ],
      [`{"type":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`, 'unknown_type'],
    ];
    for (const [text, code] of cases) {
      const h = harness();
      const started = performance.now();
      const sent = sendText(h, text);
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(sent.map((m) => m.code)).toEqual([code]);
    }
    expectNoPollution();
  });

  it('prototype-pollution payloads as keys, channel names and product ids change nothing global', () => {
    const payloads = [
      '{"type":"subscribe","channels":["__proto__"],"product_ids":["__proto__"]}',
      '{"__proto__":{"polluted":true},"type":"subscribe","channels":["level2"],"product_ids":["BTC-USD"]}',
      '{"type":"subscribe","__proto__":{"type":"subscribe","channels":["ticker"],"product_ids":["BTC-USD"]}}',
      '{"type":"subscribe","channels":[{"name":"constructor","product_ids":["prototype"]}]}',
      '{"type":"subscribe","channels":[{"__proto__":{"name":"ticker"},"product_ids":["BTC-USD"]}]}',
      '{"type":"subscribe","channels":[{"name":"ticker","__proto__":{"product_ids":["BTC-USD"]}}]}',
      '{"type":"subscribe","constructor":{"prototype":{"polluted":true}},"channels":["status"]}',
      '{"type":"unsubscribe","channels":["__proto__","constructor","prototype","toString"]}',
      '{"type":"subscribe","channels":[{"name":"level2","product_ids":["constructor","BTC-USD"]}]}',
    ];
    const h = harness();
    const replies = payloads.map((text) => sendText(h, text));
    expectNoPollution();
    // `__proto__` as an own key is just an unknown field: it never supplies type, name or product_ids.
    expect(replies[2]).toEqual([expect.objectContaining({ code: 'empty_subscription' })]);
    expect(replies[4]!.map((m) => m.code)).toEqual(['unknown_channel']);
    expect(replies[5]!.map((m) => m.code)).toEqual(['empty_subscription']);
    expect(modelReply(h.model)).toEqual({
      type: 'subscriptions',
      channels: [
        { name: 'level2', product_ids: ['BTC-USD'] },
        { name: 'status', product_ids: [] },
      ],
    });
  });

  it('commands to one session never change what another session sharing the catalogue sees', () => {
    fc.assert(
      fc.property(fc.array(anyText, { minLength: 1, maxLength: 20 }), (texts) => {
        const a = harness();
        const b = harness();
        sendText(b, JSON.stringify({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['level2'] }));
        sendText(
          b,
          JSON.stringify({ type: 'subscribe', channels: [{ name: 'matches', product_ids: ['ETH-USD'] }] }),
        );
        const bLog = b.connection.log.length;
        const bDeltas = b.observer.deltas.length;
        const bErrors = b.observer.errors.length;
        for (const text of texts) sendText(a, text);
        // B's connection and observer saw nothing of A's traffic.
        expect(b.connection.log.length).toBe(bLog);
        expect(b.observer.deltas.length).toBe(bDeltas);
        expect(b.observer.errors.length).toBe(bErrors);
        // And B still reports exactly its own set.
        const [reply] = sendText(
          b,
          JSON.stringify({ type: 'subscribe', channels: [{ name: 'level2', product_ids: ['BTC-USD'] }] }),
        );
        expect(reply).toEqual({
          type: 'subscriptions',
          channels: [
            { name: 'level2', product_ids: ['BTC-USD'] },
            { name: 'matches', product_ids: ['ETH-USD'] },
          ],
        });
        a.session.dispose();
        expect(b.observer.total()).toBe(2);
      }),
      { numRuns: 80 },
    );
  });
});
