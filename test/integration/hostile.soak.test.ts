import type { Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_ERRORS } from '../../src/errors/catalogue.js';
import { readMetric, startTestGateway, type TestGateway, waitForMetric } from '../support/gateway.js';
import {
  closedWithin,
  connectRaw,
  encodeFrame,
  type HostileSocket,
  loopUntil,
  openHostile,
  pause,
  type Received,
  rawUpgrade,
  type UpgradeReply,
  upgradeRequest,
} from '../support/hostile.js';
import { type Message, TestClient } from '../support/ws-client.js';

/**
 * A bounded soak against a live gateway: for SOAK_MS, hostile clients (each from its own 127.0.0.x
 * address, so each has its own per-IP counters) send garbage, malformed and oversized frames, flood
 * subscribes and connections, leave upgrades half-open and drop connections abruptly, while one
 * well-behaved client must receive its complete, ordered stream. Afterwards nothing may have leaked:
 * connections, per-IP counts, queued messages, memory.
 */

const SOAK_MS = 8_000;
const MAX_PER_IP = 40;
/** The gateway runs in this (vitest) process: the bound covers the gateway, its workers and every test client. */
const RSS_GROWTH_BOUND_BYTES = 150 * 1024 * 1024;

const GOOD = '127.0.0.2';
const GARBAGE = '127.0.0.3';
const OVERSIZE = '127.0.0.4';
const SUBSCRIBE_FLOOD = '127.0.0.5';
const HALF_OPEN = '127.0.0.6';
const ABRUPT = '127.0.0.7';
const MALFORMED = '127.0.0.8';
const CONNECT_FLOOD = '127.0.0.9';
const HOSTILE = [GARBAGE, OVERSIZE, SUBSCRIBE_FLOOD, HALF_OPEN, ABRUPT, MALFORMED, CONNECT_FLOOD];
const PRODUCTS = ['BTC-USD', 'ETH-USD'];

const SOAK_ENV = {
  SIM_EVENTS_PER_SEC: '200',
  SUBSCRIBE_TIMEOUT_MS: '3000',
  WS_MAX_CONNECTIONS_PER_IP: String(MAX_PER_IP),
  WS_CONNECT_RATE_PER_IP: '50',
  WS_CONNECT_BURST_PER_IP: '100',
  WS_MESSAGE_RATE: '50',
  WS_MESSAGE_BURST: '80',
  WS_SUBSCRIBE_RATE: '8',
  WS_SUBSCRIBE_BURST: '20',
  WS_MAX_PAYLOAD_BYTES: '4096',
};
const MAX_PAYLOAD = 4096;
/** The gateway reads frames up to four times the limit to answer them; uWS drops anything larger. */
const READ_LIMIT = Math.max(16 * 1024, MAX_PAYLOAD * 4);

const ERROR_CODES = new Set<string>(Object.values(CLIENT_ERRORS).map((s) => s.code));
const MESSAGE_TYPES = new Set([
  'error',
  'subscriptions',
  'snapshot',
  'l2update',
  'ticker',
  'match',
  'last_match',
  'heartbeat',
  'status',
]);

/** Everything the hostile clients observed, checked after the soak. */
class Tally {
  readonly counts = new Map<string, number>();
  /** Observations that break the contract; must stay empty. */
  readonly violations: string[] = [];

  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  violation(text: string): void {
    if (this.violations.length < 50) this.violations.push(text);
  }

  /** Every server message must be a known type; every error must carry a catalogued code. */
  checkMessages(who: string, messages: readonly Received[]): void {
    for (const m of messages) {
      if (!MESSAGE_TYPES.has(m.type)) this.violation(`${who}: unexpected message ${JSON.stringify(m)}`);
      if (m.type === 'error') {
        if (typeof m.code !== 'string' || !ERROR_CODES.has(m.code))
          this.violation(`${who}: error without a known code ${JSON.stringify(m)}`);
        if (typeof m.message !== 'string' || typeof m.reason !== 'string')
          this.violation(`${who}: malformed error ${JSON.stringify(m)}`);
        this.add(`${who}.error.${String(m.code)}`);
      }
    }
  }

  summary(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** Garbage frames: arbitrary text, arbitrary JSON and near-valid requests, each under the frame limit. */
function garbagePool(seed: number): string[] {
  const near = fc
    .record({
      type: fc.constantFrom('subscribe', 'unsubscribe', 'subscribed', '__proto__'),
      channels: fc.array(fc.constantFrom('level2', 'matches', 'full', '__proto__', 'ticker', 'status'), {
        maxLength: 4,
      }),
      product_ids: fc.array(fc.constantFrom('BTC-USD', 'XRP-USD', 'btc-usd', 'constructor'), {
        maxLength: 3,
      }),
    })
    .map((r) => JSON.stringify(r));
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.string({ unit: 'grapheme', maxLength: 300 }),
    fc.json(),
    near,
    near.map((t) => t.slice(0, Math.max(1, t.length - 3))),
  );
  return fc
    .sample(text, { seed, numRuns: 400 })
    .filter((t) => t.length > 0 && Buffer.byteLength(t) <= MAX_PAYLOAD);
}

// --- Hostile clients ---------------------------------------------------------------------------------

interface Soak {
  readonly gw: TestGateway;
  readonly port: number;
  readonly deadline: number;
  readonly tally: Tally;
}

/** Connects, or counts the refusal and backs off (hostile loops never fail on a 429). */
async function open(soak: Soak, who: string, address: string): Promise<HostileSocket | undefined> {
  const result = await openHostile(soak.gw.wsUrl, address);
  if ('socket' in result) {
    soak.tally.add(`${who}.connected`);
    return result.socket;
  }
  soak.tally.add(`${who}.refused.${result.refused}`);
  await pause(250);
  return undefined;
}

/** Random garbage, binary frames, pings and (sometimes) invalid UTF-8, at a pace under the message rate. */
async function garbageClients(soak: Soak): Promise<void> {
  const pool = garbagePool(0x5eed);
  let next = 0;
  await loopUntil(soak.deadline, 3, async (lane, round) => {
    const socket = await open(soak, 'garbage', GARBAGE);
    if (!socket) return;
    for (let i = 0; i < 25 && performance.now() < soak.deadline; i++) {
      const kind = (i + lane + round) % 6;
      if (kind === 4) socket.ws.send(Buffer.from(pool[next++ % pool.length]!), { binary: true });
      else if (kind === 5) socket.ws.ping(Buffer.from('hostile'));
      else socket.ws.send(pool[next++ % pool.length]!);
      await pause(25);
    }
    const invalidUtf8 = round % 4 === 3;
    if (invalidUtf8) {
      // uWS refuses a text frame that is not UTF-8 by dropping the connection.
      socket.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    } else {
      socket.ws.close(1000);
    }
    const { code } = await socket.closed;
    soak.tally.add(`garbage.close.${code}`);
    if (invalidUtf8 ? code === 1000 : code !== 1000)
      soak.tally.violation(`garbage: close ${code} (invalid UTF-8 sent: ${invalidUtf8})`);
    soak.tally.checkMessages('garbage', socket.messages);
  });
}

/** Protocol violations on raw sockets after a real upgrade; the server must drop each connection. */
async function malformedClients(soak: Soak): Promise<void> {
  const violations: Array<[string, Buffer]> = [
    ['rsv1', encodeFrame({ opcode: 1, payload: Buffer.from('{}'), rsv: 4 })],
    ['opcode3', encodeFrame({ opcode: 3, payload: Buffer.from('x') })],
    ['continuation-first', encodeFrame({ opcode: 0, payload: Buffer.from('x') })],
    ['ping-126', encodeFrame({ opcode: 9, payload: Buffer.alloc(126, 1) })],
    ['fragmented-ping', encodeFrame({ opcode: 9, payload: Buffer.from('x'), fin: false })],
    ['length-2^63', encodeFrame({ opcode: 1, payload: Buffer.alloc(0), claimedLength: 2n ** 63n })],
    ['invalid-utf8', encodeFrame({ opcode: 1, payload: Buffer.from([0xc3, 0x28, 0xa0, 0xa1]) })],
    ['http-after-upgrade', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
  ];
  await loopUntil(soak.deadline, 2, async (lane, round) => {
    const reply = await rawUpgrade(soak.port, MALFORMED);
    if (reply.status !== 101) {
      soak.tally.add(`malformed.refused.${reply.status}`);
      await pause(250);
      return;
    }
    const [name, bytes] = violations[(lane + round * 2) % violations.length]!;
    // Half the time the violation follows a valid request, mid-stream.
    if (round % 2 === 0) {
      const subscribe = '{"type":"subscribe","channels":["heartbeat"],"product_ids":["BTC-USD"]}';
      reply.socket.write(encodeFrame({ opcode: 1, payload: Buffer.from(subscribe) }));
    }
    reply.socket.write(bytes);
    if (await closedWithin(reply.socket, 2_000)) soak.tally.add(`malformed.dropped.${name}`);
    else soak.tally.violation(`malformed: ${name} did not close the connection within 2 s`);
    reply.socket.destroy();
    // An unmasked frame is a violation uWS does not detect (it reads a mask key anyway): just leave.
    if (round % 5 === 0) {
      const unmasked = await rawUpgrade(soak.port, MALFORMED);
      if (unmasked.status === 101) {
        unmasked.socket.write(encodeFrame({ opcode: 1, payload: Buffer.from('{"type":"x"}'), mask: false }));
        soak.tally.add('malformed.unmasked');
      }
      unmasked.socket.destroy();
    }
    await pause(40);
  });
}

/** Frames just over the limit (error + 1009), at the limit (accepted) and past 4x (dropped by uWS). */
async function oversizeClients(soak: Soak): Promise<void> {
  await loopUntil(soak.deadline, 2, async (lane, round) => {
    const socket = await open(soak, 'oversize', OVERSIZE);
    if (!socket) return;
    const kind = (['over', 'at', 'far', 'over', 'at-limit-read'] as const)[(lane + round) % 5]!;
    if (kind === 'over' || kind === 'at-limit-read') {
      const size = kind === 'over' ? MAX_PAYLOAD + 1 + ((round * 37) % 200) : READ_LIMIT;
      const sentAt = performance.now();
      socket.ws.send('x'.repeat(size));
      const { code } = await socket.closed;
      const codes = socket.messages.map((m) => m.code);
      if (code !== 1009 || codes.length !== 1 || codes[0] !== 'message_too_big')
        soak.tally.violation(
          `oversize: ${size} bytes gave close ${code} and ${JSON.stringify(codes)} after ${Math.round(performance.now() - sentAt)} ms`,
        );
      soak.tally.add('oversize.too_big_1009');
    } else if (kind === 'at') {
      const request = '{"type":"subscribe","channels":["heartbeat"],"product_ids":["BTC-USD"],"pad":"';
      const text = `${request}${'p'.repeat(MAX_PAYLOAD - request.length - 2)}"}`;
      socket.ws.send(text);
      if (await socket.until((m) => m.type === 'subscriptions', 3_000))
        soak.tally.add('oversize.at_limit_ok');
      else soak.tally.violation(`oversize: a frame of exactly ${MAX_PAYLOAD} bytes was not served`);
      socket.ws.close(1000);
      await socket.closed;
    } else {
      socket.ws.send('y'.repeat(READ_LIMIT + 1 + ((round * 4099) % 40_000)));
      const { code } = await socket.closed;
      if (code !== 1006 || socket.messages.length > 0)
        soak.tally.violation(`oversize: a frame past 4x gave ${code} and ${socket.messages.length} messages`);
      soak.tally.add('oversize.dropped_1006');
    }
    soak.tally.checkMessages('oversize', socket.messages);
    await pause(60);
  });
}

const SUBSCRIBES = [
  { type: 'subscribe', channels: ['heartbeat'], product_ids: ['BTC-USD'] },
  { type: 'subscribe', channels: ['level2'], product_ids: ['ETH-USD'] },
  { type: 'unsubscribe', channels: ['level2'], product_ids: ['ETH-USD'] },
  { type: 'subscribe', channels: ['ticker', 'matches'], product_ids: ['BTC-USD', 'ETH-USD'] },
  { type: 'unsubscribe', channels: ['ticker'] },
].map((r) => JSON.stringify(r));

/**
 * Lane 0: a burst of 120 requests at once: subscribe limit (rate_limited), then the message limit
 * (flood + 4003). Lane 1: 25 requests/s, over the subscribe rate but under the message rate:
 * rate_limited errors and the connection stays open.
 */
async function subscribeFloodClients(soak: Soak): Promise<void> {
  await loopUntil(soak.deadline, 2, async (lane, round) => {
    const socket = await open(soak, 'subflood', SUBSCRIBE_FLOOD);
    if (!socket) return;
    if (lane === 0) {
      for (let i = 0; i < 120; i++) socket.ws.send(SUBSCRIBES[(i + round) % SUBSCRIBES.length]!);
      const { code } = await socket.closed;
      const errors = socket.messages.filter((m) => m.type === 'error').map((m) => m.code);
      if (code !== 4003 || errors.at(-1) !== 'flood' || !errors.includes('rate_limited'))
        soak.tally.violation(`subflood: burst ended ${code} after ${JSON.stringify(errors.slice(-3))}`);
      soak.tally.add(`subflood.burst.close.${code}`);
    } else {
      const until = Math.min(soak.deadline, performance.now() + 1_500);
      let sent = 0;
      for (; performance.now() < until; sent++) {
        socket.ws.send(SUBSCRIBES[sent % SUBSCRIBES.length]!);
        await pause(40);
      }
      // Past the burst (20), some must have been refused; a round cut short by the deadline may not get there.
      await socket.until((m) => m.type === 'error' || m.type === 'subscriptions', 1_000);
      const codes = socket.messages.map((m) => m.code);
      if ((sent > 30 && !codes.includes('rate_limited')) || codes.includes('flood'))
        soak.tally.violation(`subflood: a 25/s client got ${JSON.stringify([...new Set(codes)])}`);
      socket.ws.close(1000);
      const { code } = await socket.closed;
      if (code !== 1000) soak.tally.violation(`subflood: a 25/s client was closed with ${code}`);
      soak.tally.add(`subflood.steady.close.${code}`);
    }
    soak.tally.checkMessages('subflood', socket.messages);
    await pause(50);
  });
}

/** TCP connections that never complete an upgrade: partial request heads, or nothing at all. */
async function halfOpenClients(soak: Soak): Promise<void> {
  const held: Socket[] = [];
  const partial = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${soak.port}\r\nUpgrade: websocket\r\nConnection: Up`;
  try {
    for (let i = 0; i < 20; i++) {
      const socket = await connectRaw(soak.port, HALF_OPEN);
      if (i % 2 === 0) socket.write(partial);
      held.push(socket);
    }
    soak.tally.add('halfopen.opened', held.length);
    // Churn: a new half-open socket every 100 ms, the oldest one dropped; one slow-loris byte each turn.
    const slowLoris = await connectRaw(soak.port, HALF_OPEN);
    const request = upgradeRequest(soak.port);
    for (let i = 0; performance.now() < soak.deadline; i++) {
      if (!slowLoris.destroyed && i < request.length - 4) slowLoris.write(request[i]!);
      const socket = await connectRaw(soak.port, HALF_OPEN);
      socket.write(partial.slice(0, 10 + (i % 40)));
      held.push(socket);
      held.shift()?.destroy();
      soak.tally.add('halfopen.opened');
      await pause(100);
    }
    held.push(slowLoris);
  } finally {
    soak.tally.add('halfopen.closed_by_server', held.filter((s) => s.destroyed || s.closed).length);
    for (const socket of held) socket.destroy();
  }
}

/** Connections dropped without a close handshake, at every stage of their life. */
async function abruptClients(soak: Soak): Promise<void> {
  await loopUntil(soak.deadline, 3, async (lane, round) => {
    const kind = (lane + round) % 4;
    if (kind === 0) {
      // Mid-stream: subscribed, receiving level2 and matches.
      const socket = await open(soak, 'abrupt', ABRUPT);
      if (!socket) return;
      socket.ws.send(
        JSON.stringify({ type: 'subscribe', channels: ['level2', 'matches'], product_ids: PRODUCTS }),
      );
      await socket.until((m) => m.type === 'l2update', 3_000);
      socket.ws.terminate();
      await socket.closed;
      soak.tally.checkMessages('abrupt', socket.messages);
      soak.tally.add('abrupt.mid_stream');
    } else if (kind === 1) {
      // Right after the upgrade: raw socket destroyed as soon as the 101 arrives.
      const reply = await rawUpgrade(soak.port, ABRUPT);
      reply.socket.destroy();
      soak.tally.add(reply.status === 101 ? 'abrupt.after_101' : `abrupt.refused.${reply.status}`);
    } else if (kind === 2) {
      // During the upgrade: the request is sent and the socket destroyed before any answer.
      const socket = await connectRaw(soak.port, ABRUPT);
      socket.write(upgradeRequest(soak.port));
      socket.destroy();
      soak.tally.add('abrupt.during_upgrade');
    } else {
      const socket = await open(soak, 'abrupt', ABRUPT);
      if (!socket) return;
      socket.ws.terminate();
      await socket.closed;
      soak.tally.add('abrupt.after_open');
    }
    await pause(70);
  });
}

/**
 * Hundreds of upgrade attempts from one address: first more than the per-IP limit held at once
 * (exactly MAX_PER_IP must succeed), then waves of attempts dropped at once, past the connect rate.
 * Returns when the flood is over (the connect-rate bucket then refills).
 */
async function connectFlood(soak: Soak, floodOver: { at: number }): Promise<void> {
  const refusal = (reply: UpgradeReply) => {
    const retryAfter = Number(reply.headers['retry-after']);
    if (!Number.isInteger(retryAfter) || retryAfter < 1)
      soak.tally.violation(`connflood: ${reply.status} with Retry-After ${reply.headers['retry-after']}`);
    const reason = /"reason":"([a-z_]+)"/.exec(reply.body)?.[1] ?? 'none';
    soak.tally.add(`connflood.${reply.status}.${reason}`);
  };
  // Held: 70 at once, 40 may stay.
  const held = await Promise.all(Array.from({ length: 70 }, () => rawUpgrade(soak.port, CONNECT_FLOOD)));
  const accepted = held.filter((r) => r.status === 101);
  soak.tally.add('connflood.held_accepted', accepted.length);
  for (const reply of held) if (reply.status !== 101) refusal(reply);
  if (accepted.length !== MAX_PER_IP)
    soak.tally.violation(
      `connflood: ${accepted.length} of 70 concurrent upgrades accepted (limit ${MAX_PER_IP})`,
    );
  for (const reply of accepted) reply.socket.destroy();
  // Churn: 12 waves of 25 attempts, each accepted connection dropped at once.
  for (let wave = 0; wave < 12 && performance.now() < soak.deadline; wave++) {
    const replies = await Promise.all(Array.from({ length: 25 }, () => rawUpgrade(soak.port, CONNECT_FLOOD)));
    for (const reply of replies) {
      if (reply.status === 101) {
        reply.socket.destroy();
        soak.tally.add('connflood.churn_accepted');
      } else {
        refusal(reply);
      }
    }
  }
  floodOver.at = performance.now();
}

/** Prometheus-style scrapes of /metrics every 100 ms throughout: it must keep answering under attack. */
async function monitor(soak: Soak, latency: { max: number }): Promise<void> {
  let lastAccepted = 0;
  while (performance.now() < soak.deadline) {
    const started = performance.now();
    const response = await fetch(`${soak.gw.httpUrl}/metrics`);
    const text = await response.text();
    const elapsed = performance.now() - started;
    latency.max = Math.max(latency.max, elapsed);
    if (response.status !== 200 || !text.includes('ws_active_connections'))
      soak.tally.violation(`monitor: /metrics answered ${response.status}`);
    // A counter of the process's totals never goes down (Prometheus would read a reset).
    const accepted = readMetric(text, 'ws_connections_total') ?? 0;
    if (accepted < lastAccepted)
      soak.tally.violation(
        `monitor: ws_connections_total went down ${lastAccepted} -> ${accepted} (scrape took ${Math.round(elapsed)} ms)`,
      );
    lastAccepted = Math.max(lastAccepted, accepted);
    soak.tally.add('monitor.scrapes');
    await pause(100);
  }
}

// --- The well-behaved client ---------------------------------------------------------------------------

interface StreamReport {
  readonly problems: string[];
  readonly perProduct: Record<string, { snapshots: number; updates: number; matches: number }>;
  readonly maxGapMs: number;
}

/** Level2 sequences consecutive after the snapshot, trade_ids consecutive, per product; no errors. */
function checkStream(client: TestClient): StreamReport {
  const problems: string[] = [];
  const perProduct: StreamReport['perProduct'] = {};
  const sequence = new Map<string, number>();
  const tradeId = new Map<string, number>();
  for (const product of PRODUCTS) perProduct[product] = { snapshots: 0, updates: 0, matches: 0 };
  for (const m of client.messages as Message[]) {
    const product = m.product_id as string;
    const stats = perProduct[product];
    if (m.type === 'error' || m.type === 'subscriptions') {
      if (m.type === 'error') problems.push(`error: ${JSON.stringify(m)}`);
      continue;
    }
    if (!stats) {
      problems.push(`unexpected message ${JSON.stringify(m).slice(0, 200)}`);
      continue;
    }
    if (m.type === 'snapshot') {
      stats.snapshots++;
      sequence.set(product, m.sequence as number);
    } else if (m.type === 'l2update') {
      const last = sequence.get(product);
      if (last === undefined) problems.push(`${product}: l2update ${m.sequence} before the snapshot`);
      else if (m.sequence !== last + 1) problems.push(`${product}: l2update ${m.sequence} after ${last}`);
      sequence.set(product, m.sequence as number);
      stats.updates++;
    } else if (m.type === 'match' || m.type === 'last_match') {
      const last = tradeId.get(product);
      if (m.type === 'last_match' && last !== undefined)
        problems.push(`${product}: last_match after a match`);
      if (last !== undefined && m.trade_id !== last + 1)
        problems.push(`${product}: trade_id ${m.trade_id} after ${last}`);
      tradeId.set(product, m.trade_id as number);
      if (m.type === 'match') stats.matches++;
    } else {
      problems.push(`unexpected ${m.type}`);
    }
  }
  let maxGapMs = 0;
  for (let i = 1; i < client.arrivals.length; i++)
    maxGapMs = Math.max(maxGapMs, client.arrivals[i]! - client.arrivals[i - 1]!);
  return { problems: problems.slice(0, 20), perProduct, maxGapMs };
}

// --- Tests ------------------------------------------------------------------------------------------------

let gw: TestGateway | undefined;
const extra: Array<{ destroy(): void }> = [];
/** Process warnings (the gateway runs in this process), e.g. Node's listener-leak warning. */
const warnings: string[] = [];
const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
beforeAll(() => {
  process.on('warning', onWarning);
});
afterAll(() => {
  process.off('warning', onWarning);
});
afterEach(async () => {
  for (const socket of extra.splice(0)) socket.destroy();
  await gw?.stop();
  gw = undefined;
});

async function rss(gateway: TestGateway): Promise<number> {
  return (await gateway.metric('process_resident_memory_bytes')) ?? Number.NaN;
}

/** Opens `count` connections from `address` at once; all must be accepted. Returns them, open. */
async function fillAddress(port: number, address: string, count: number): Promise<UpgradeReply[]> {
  return Promise.all(Array.from({ length: count }, () => rawUpgrade(port, address)));
}

describe.each(['2', '0'])('WS_WORKER_THREADS=%s', (threads) => {
  it('survives hostile clients for a bounded soak: the good stream is complete and nothing leaks', async () => {
    gw = await startTestGateway({ ...SOAK_ENV, WS_WORKER_THREADS: threads });
    warnings.length = 0;
    const port = Number(new URL(gw.wsUrl).port);

    const good = await TestClient.connect(gw.wsUrl, { localAddress: GOOD });
    good.subscribe(['level2', 'matches'], PRODUCTS);
    await good.nextOfType('subscriptions');
    for (const product of PRODUCTS) await good.next((m) => m.type === 'snapshot' && m.product_id === product);
    let goodClosed = false;
    void good.closed.then(() => {
      goodClosed = true;
    });
    const rssBefore = await rss(gw);

    const soak: Soak = { gw, port, deadline: performance.now() + SOAK_MS, tally: new Tally() };
    const floodOver = { at: Number.POSITIVE_INFINITY };
    const scrapeLatency = { max: 0 };
    const started = performance.now();
    await Promise.all([
      monitor(soak, scrapeLatency),
      garbageClients(soak),
      malformedClients(soak),
      oversizeClients(soak),
      subscribeFloodClients(soak),
      halfOpenClients(soak),
      abruptClients(soak),
      connectFlood(soak, floodOver),
    ]);
    const soakMs = performance.now() - started;
    const { tally } = soak;

    // The well-behaved client: complete, ordered, no errors, still open.
    const stream = checkStream(good);
    expect(goodClosed, 'the well-behaved client was disconnected').toBe(false);
    expect(stream.problems).toEqual([]);
    for (const product of PRODUCTS) {
      expect(stream.perProduct[product]!.snapshots, product).toBe(1);
      expect(stream.perProduct[product]!.updates, product).toBeGreaterThan(300);
      expect(stream.perProduct[product]!.matches, product).toBeGreaterThan(10);
    }
    expect(stream.maxGapMs, 'the good stream stalled').toBeLessThan(3_000);

    // The hostile clients got what the protocol promises, and were really exercised.
    expect(tally.violations).toEqual([]);
    expect(tally.get('connflood.held_accepted')).toBe(MAX_PER_IP);
    expect(tally.get('connflood.429.per_ip_limit')).toBeGreaterThan(0);
    expect(tally.get('connflood.429.connect_rate')).toBeGreaterThan(0);
    expect(tally.get('oversize.too_big_1009')).toBeGreaterThan(0);
    expect(tally.get('oversize.dropped_1006')).toBeGreaterThan(0);
    expect(tally.get('oversize.at_limit_ok')).toBeGreaterThan(0);
    expect(tally.get('subflood.burst.close.4003')).toBeGreaterThan(0);
    expect(tally.get('subflood.error.rate_limited')).toBeGreaterThan(0);
    expect(tally.get('abrupt.mid_stream')).toBeGreaterThan(0);
    expect(tally.get('abrupt.during_upgrade')).toBeGreaterThan(0);
    expect(tally.get('garbage.connected')).toBeGreaterThan(0);

    // Server side: only the good client is left; nothing is queued.
    await waitForMetric(gw, 'ws_active_connections', '', (v) => v === 1, 10_000);
    await waitForMetric(gw, 'ws_message_queue_size', '', (v) => v === 0, 10_000);
    const rejected = {
      connect_rate: (await gw.metric('ws_connections_rejected_total', 'reason="connect_rate"')) ?? 0,
      per_ip_limit: (await gw.metric('ws_connections_rejected_total', 'reason="per_ip_limit"')) ?? 0,
    };
    expect(rejected.connect_rate).toBeGreaterThan(0);
    expect(rejected.per_ip_limit).toBeGreaterThan(0);
    for (const reason of ['flood', 'message_too_big']) {
      expect(await gw.metric('ws_disconnections_total', `reason="${reason}"`), reason).toBeGreaterThan(0);
    }
    const rssAfter = await rss(gw);

    // The per-IP table holds nothing for the hostile addresses: each may open exactly the limit again.
    // (Waits out the connect-rate windows first: 50/s sustained plus a 100 burst, refilled within 1 s.)
    const soakEnded = started + soakMs;
    while (performance.now() < Math.max(floodOver.at + 2_500, soakEnded + 1_200)) await pause(100);
    for (const address of HOSTILE) {
      const replies = await fillAddress(port, address, MAX_PER_IP);
      for (const reply of replies) extra.push(reply.socket);
      expect(
        replies.map((r) => r.status).filter((s) => s !== 101),
        `${address}: refused while reopening ${MAX_PER_IP}`,
      ).toEqual([]);
      const over = await rawUpgrade(port, address);
      extra.push(over.socket);
      expect(over.status, `${address}: connection ${MAX_PER_IP + 1}`).toBe(429);
      expect(over.body).toContain('per_ip_limit');
      for (const reply of replies) reply.socket.destroy();
    }
    await waitForMetric(gw, 'ws_active_connections', '', (v) => v === 1, 10_000);
    await good.close();
    await waitForMetric(gw, 'ws_active_connections', '', (v) => v === 0, 10_000);

    const growth = rssAfter - rssBefore;
    console.log(
      `[soak WS_WORKER_THREADS=${threads}] ${Math.round(soakMs)} ms; good stream ${JSON.stringify(stream.perProduct)}, ` +
        `max gap ${Math.round(stream.maxGapMs)} ms; slowest /metrics ${Math.round(scrapeLatency.max)} ms; ` +
        `rejected ${JSON.stringify(rejected)}; ` +
        `RSS ${(rssBefore / 2 ** 20).toFixed(1)} -> ${(rssAfter / 2 ** 20).toFixed(1)} MiB ` +
        `(growth ${(growth / 2 ** 20).toFixed(1)} MiB, bound ${RSS_GROWTH_BOUND_BYTES / 2 ** 20} MiB); ` +
        `hostile ${JSON.stringify(tally.summary())}`,
    );
    expect(growth).toBeLessThan(RSS_GROWTH_BOUND_BYTES);
    expect(tally.get('monitor.scrapes')).toBeGreaterThan(20);
    // No listener leak: Node warns once an emitter (here a worker) collects more than 10 listeners
    // for one event, which repeated /metrics scrapes must not cause.
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  }, 45_000);

  it('per-IP counts do not drift: 300 open/close cycles and 100 abrupt drops, then exactly the limit', async () => {
    const address = '127.0.0.10';
    gw = await startTestGateway({
      WS_WORKER_THREADS: threads,
      WS_MAX_CONNECTIONS_PER_IP: '5',
      WS_CONNECT_RATE_PER_IP: '100000',
      WS_CONNECT_BURST_PER_IP: '100000',
    });
    const port = Number(new URL(gw.wsUrl).port);
    // Two lanes, so at most four connections are ever open from the server's point of view.
    await Promise.all(
      [0, 1].map(async () => {
        for (let i = 0; i < 150; i++) {
          const client = await TestClient.connect(gw!.wsUrl, { localAddress: address });
          await client.close();
        }
      }),
    );
    for (let i = 0; i < 100; i++) {
      if (i % 4 === 0) {
        const client = await TestClient.connect(gw.wsUrl, { localAddress: address });
        await client.terminate();
      } else if (i % 4 === 1) {
        const client = await TestClient.connect(gw.wsUrl, { localAddress: address });
        client.subscribe(['level2'], ['BTC-USD']);
        await client.nextOfType('snapshot');
        await client.terminate();
      } else if (i % 4 === 2) {
        (await rawUpgrade(port, address)).socket.destroy();
      } else {
        const socket = await connectRaw(port, address);
        socket.write(upgradeRequest(port));
        socket.destroy();
      }
    }
    await waitForMetric(gw, 'ws_active_connections', '', (v) => v === 0, 10_000);
    expect(await gw.metric('ws_connections_rejected_total', 'reason="per_ip_limit"')).toBeUndefined();

    const five = await fillAddress(port, address, 5);
    for (const reply of five) extra.push(reply.socket);
    expect(five.map((r) => r.status)).toEqual([101, 101, 101, 101, 101]);
    const sixth = await rawUpgrade(port, address);
    expect(sixth.status).toBe(429);
    expect(Number(sixth.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(sixth.body).toContain('per_ip_limit');
    expect(await gw.metric('ws_connections_rejected_total', 'reason="per_ip_limit"')).toBe(1);
  }, 30_000);
});
