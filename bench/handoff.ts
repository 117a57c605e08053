/**
 * Benchmark: handing the hub's serialised messages from the main thread to N uWS worker threads.
 *
 * The main thread plays the hub: every event-loop turn (setImmediate) it produces a batch of
 * pre-serialised feed messages, all stamped with the turn's receivedAt as one upstream read would be,
 * and hands the batch to every worker once. Mechanisms compared:
 *   string         (a) one string per worker per turn, topic\0channel\0receivedAt\0payload\0...
 *   arraybuffer    (b) one ArrayBuffer of length-prefixed records, encoded once, cloned per worker
 *   sab-notice     (c) records written once into a SharedArrayBuffer ring that every worker reads with
 *                      its own cursor; a worker that has gone idle is woken by a tiny postMessage
 *   sab-waitasync  (c) the same ring; workers sleep in Atomics.waitAsync on the write cursor
 *
 * The producer never waits for the workers' replies, but no worker may be more than --buffer-kib
 * behind (nothing is queued without bound, and nothing unread in the ring is ever overwritten). When
 * one is, each point runs under one of two policies (--when-full):
 *   block  main waits (Atomics.wait) until the worker has consumed enough: backpressure, so the
 *          delivered rate is the sustainable one; the time main spends blocked is reported
 *   drop   the message is not handed to that worker (the ring, shared, drops it for all), and counted:
 *          a true open loop
 *
 * Each point runs in fresh workers: --warmup ms unmeasured, then --duration ms measured. Delivered
 * rates count each worker's messages from the window until it has drained them.
 *
 * Build and run:  npx tsc -p tsconfig.build.json && node dist/bench/handoff.js [--smoke] [--help]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import {
  consumedSlot,
  controlBlockBytes,
  epochMs,
  FIELD_SEPARATOR,
  type FromWorker,
  idleSlot,
  isRingMechanism,
  MEASURE_FROM_F64_INDEX,
  MECHANISMS,
  type Mechanism,
  quantileMs,
  RECORD_ALIGN,
  RECORD_HEADER_BYTES,
  RecordField,
  type ToWorker,
  threadCpuNs,
  type WorkerReport,
  type WorkerSetup,
  WRAP_MARKER,
  WRITE_CURSOR_SLOT,
} from './handoff-worker.js';

// --- Options ----------------------------------------------------------------------------------

interface Options {
  policies: OverflowPolicy[];
  mechanisms: Mechanism[];
  workerCounts: number[];
  batchSizes: number[];
  durationMs: number;
  warmupMs: number;
  /** How far (bytes) a worker may fall behind; also the ring's size, so a power of two. */
  bufferBytes: number;
  /** Every point is run this many times, in interleaved rounds; tables show the median run. */
  rounds: number;
}

const USAGE = `usage: node dist/bench/handoff.js [options]
  --smoke              0.3 s per point, 0.1 s warm-up
  --duration <ms>      measured time per point (default 2000)
  --warmup <ms>        unmeasured time before it (default 250)
  --workers <list>     worker counts (default 1,2,4)
  --batches <list>     messages per turn (default 1,10,100)
  --mechanisms <list>  any of ${MECHANISMS.join(', ')} (default all)
  --when-full <list>   what the producer does when a worker is --buffer-kib behind:
                       block (wait for it) and/or drop (count and skip) (default block,drop)
  --buffer-kib <n>     per-worker backlog bound and ring size, a power of two (default 4096)
  --rounds <n>         run every point n times, round after round, and report the median run
                       by delivered rate, with the range (default 1)`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      workers: { type: 'string', default: '1,2,4' },
      batches: { type: 'string', default: '1,10,100' },
      mechanisms: { type: 'string', default: MECHANISMS.join(',') },
      'when-full': { type: 'string', default: OVERFLOW_POLICIES.join(',') },
      'buffer-kib': { type: 'string', default: '4096' },
      rounds: { type: 'string', default: '1' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const positive = (name: string, text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`--${name}: expected a positive integer, got "${text}"\n${USAGE}`);
    return n;
  };
  const list = (name: string, text: string): number[] => text.split(',').map((item) => positive(name, item));
  const oneOf = <T extends string>(name: string, allowed: readonly T[], text: string): T[] =>
    text.split(',').map((item) => {
      const found = allowed.find((candidate) => candidate === item);
      if (found === undefined) throw new Error(`--${name}: unknown "${item}"\n${USAGE}`);
      return found;
    });
  const bufferBytes = positive('buffer-kib', values['buffer-kib']) * 1024;
  if ((bufferBytes & (bufferBytes - 1)) !== 0 || bufferBytes > 2 ** 30)
    throw new Error(`--buffer-kib: must be a power of two, at most 1 GiB\n${USAGE}`);
  return {
    policies: oneOf('when-full', OVERFLOW_POLICIES, values['when-full']),
    mechanisms: oneOf('mechanisms', MECHANISMS, values.mechanisms),
    workerCounts: list('workers', values.workers),
    batchSizes: list('batches', values.batches),
    durationMs: positive('duration', values.duration ?? (values.smoke ? '300' : '2000')),
    warmupMs: positive('warmup', values.warmup ?? (values.smoke ? '100' : '250')),
    bufferBytes,
    rounds: positive('rounds', values.rounds),
  };
}

// --- Messages ---------------------------------------------------------------------------------

interface Message {
  topic: string;
  channel: string;
  payload: string;
}

/** Deterministic PRNG (mulberry32), so every run hands off the same messages. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const PRODUCTS = [
  ['BTC-USD', 67_000],
  ['ETH-USD', 3_500],
  ['SOL-USD', 150],
  ['ETH-BTC', 0.052],
] as const;

/**
 * Feed messages shaped as the hub serialises them (src/hub/messages.ts): level2 updates of one to
 * three changes (~150-250 bytes), matches (~300) and tickers (~400), in a 2:1:1 mix.
 */
function messagePool(size: number): Message[] {
  const next = random(42);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const price = (reference: number) => (reference * (0.99 + next() * 0.02)).toFixed(reference < 1 ? 5 : 2);
  const amount = () => (next() * 3).toFixed(8);
  const uuid = () =>
    [8, 4, 4, 4, 12]
      .map((n) =>
        Math.floor(next() * 16 ** n)
          .toString(16)
          .padStart(n, '0'),
      )
      .join('-');
  const time = (i: number) =>
    `${new Date(1_764_000_000_000 + i * 7).toISOString().slice(0, 23)}${String(i % 1000).padStart(3, '0')}Z`;
  const side = () => pick(['buy', 'sell'] as const);

  return Array.from({ length: size }, (_, i): Message => {
    const [productId, reference] = pick(PRODUCTS);
    const kind = i % 4;
    if (kind < 2) {
      const changes = Array.from({ length: 1 + Math.floor(next() * 3) }, () => [
        side(),
        price(reference),
        amount(),
      ]);
      const payload = { type: 'l2update', product_id: productId, changes, time: time(i), sequence: 9e9 + i };
      return { topic: `level2:${productId}`, channel: 'level2', payload: JSON.stringify(payload) };
    }
    const trade = {
      trade_id: 600_000_000 + i,
      sequence: 9e9 + i,
      maker_order_id: uuid(),
      taker_order_id: uuid(),
      time: time(i),
      product_id: productId,
      size: amount(),
      price: price(reference),
      side: side(),
    };
    if (kind === 2) {
      return {
        topic: `matches:${productId}`,
        channel: 'matches',
        payload: JSON.stringify({ type: 'match', ...trade }),
      };
    }
    const ticker = {
      type: 'ticker',
      sequence: trade.sequence,
      product_id: productId,
      price: trade.price,
      open_24h: price(reference),
      volume_24h: (next() * 20_000).toFixed(8),
      low_24h: price(reference),
      high_24h: price(reference),
      volume_30d: (next() * 600_000).toFixed(8),
      best_bid: price(reference),
      best_bid_size: amount(),
      best_ask: price(reference),
      best_ask_size: amount(),
      side: trade.side,
      time: trade.time,
      trade_id: trade.trade_id,
      last_size: trade.size,
    };
    return { topic: `ticker:${productId}`, channel: 'ticker', payload: JSON.stringify(ticker) };
  });
}

// --- Handoffs: the main thread's end of each mechanism -----------------------------------------

const OVERFLOW_POLICIES = ['block', 'drop'] as const;
type OverflowPolicy = (typeof OVERFLOW_POLICIES)[number];

/** Longest single Atomics.wait; workers notify as they consume, so this is only a safety net. */
const WAIT_SLICE_MS = 100;

/**
 * What the producer does when a worker is --buffer-kib behind. `drop`: the message is not handed to
 * that worker, and counted (the load stays open loop). `block`: the main thread waits until the worker
 * has consumed enough (backpressure), and the time is counted.
 */
class Overflow {
  readonly dropped: number[];
  stalledMs = 0;

  constructor(
    readonly policy: OverflowPolicy,
    workers: number,
  ) {
    this.dropped = new Array<number>(workers).fill(0);
  }

  /** Blocks the main thread until control[slot] moves off `value`; workers notify when they move it. */
  waitForProgress(control: Int32Array, slot: number, value: number): void {
    const started = performance.now();
    Atomics.wait(control, slot, value | 0, WAIT_SLICE_MS);
    this.stalledMs += performance.now() - started;
  }
}

/** Collects one turn's messages and hands them to every worker at the end of the turn. */
interface Handoff {
  publish(topic: string, channel: string, payload: string, receivedAt: number): void;
  flush(): void;
  readonly overflow: Overflow;
}

/**
 * Bounds how far a worker may fall behind on the postMessage mechanisms, in the same bytes as the
 * ring: main counts what it sent, the worker counts what it consumed (u32, wrapping).
 */
class BacklogGate {
  private readonly sent: number[];

  constructor(
    private readonly control: Int32Array,
    private readonly overflow: Overflow,
    private readonly limitBytes: number,
  ) {
    this.sent = new Array<number>(overflow.dropped.length).fill(0);
  }

  /**
   * Whether worker `w` may be sent `bytes` more (blocking until it may, under `block`); if so, they
   * are counted as sent. A worker with nothing outstanding may always be sent a batch.
   */
  admit(w: number, bytes: number): boolean {
    for (;;) {
      const consumed = Atomics.load(this.control, consumedSlot(w));
      const backlog = (this.sent[w]! - consumed) >>> 0;
      if (backlog === 0 || backlog + bytes <= this.limitBytes) {
        this.sent[w] = (this.sent[w]! + bytes) >>> 0;
        return true;
      }
      if (this.overflow.policy === 'drop') return false;
      this.overflow.waitForProgress(this.control, consumedSlot(w), consumed);
    }
  }
}

/** (a) One string per turn; structured clone copies it to each worker. */
class StringHandoff implements Handoff {
  private fields: string[] = [];
  private entries = 0;

  constructor(
    private readonly workers: readonly Worker[],
    private readonly gate: BacklogGate,
    readonly overflow: Overflow,
  ) {}

  publish(topic: string, channel: string, payload: string, receivedAt: number): void {
    this.fields.push(topic, channel, String(receivedAt), payload);
    this.entries++;
  }

  flush(): void {
    if (this.entries === 0) return;
    const batch = this.fields.join(FIELD_SEPARATOR);
    this.workers.forEach((worker, w) => {
      if (this.gate.admit(w, batch.length)) worker.postMessage(batch satisfies ToWorker);
      else this.overflow.dropped[w]! += this.entries;
    });
    this.fields = [];
    this.entries = 0;
  }
}

const encoder = new TextEncoder();
/** UTF-8 of the (few, fixed) topic and channel names, encoded once each. */
const encodedNames = new Map<string, Uint8Array>();

function encodedName(name: string): Uint8Array {
  let bytes = encodedNames.get(name);
  if (bytes === undefined) {
    bytes = encoder.encode(name);
    encodedNames.set(name, bytes);
  }
  return bytes;
}

const alignRecord = (bytes: number): number => (bytes + RECORD_ALIGN - 1) & ~(RECORD_ALIGN - 1);

/** Room to reserve before encoding a record: UTF-8 takes at most 3 bytes per UTF-16 unit. */
function maxRecordBytes(topic: string, channel: string, payload: string): number {
  return alignRecord(RECORD_HEADER_BYTES + 3 * (topic.length + channel.length + payload.length));
}

/** Writes a record (layout in handoff-worker.ts) at `offset`, which has maxRecordBytes of room; returns its stride. */
function writeRecord(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
  topic: string,
  channel: string,
  payload: string,
  receivedAt: number,
): number {
  const topicBytes = encodedName(topic);
  const channelBytes = encodedName(channel);
  const topicStart = offset + RECORD_HEADER_BYTES;
  const payloadStart = topicStart + topicBytes.length + channelBytes.length;
  bytes.set(topicBytes, topicStart);
  bytes.set(channelBytes, topicStart + topicBytes.length);
  const payloadLength = encoder.encodeInto(payload, bytes.subarray(payloadStart)).written;
  const stride = alignRecord(payloadStart + payloadLength - offset);
  view.setUint32(offset + RecordField.stride, stride, true);
  view.setUint32(offset + RecordField.payloadLength, payloadLength, true);
  view.setFloat64(offset + RecordField.receivedAt, receivedAt, true);
  view.setUint16(offset + RecordField.topicLength, topicBytes.length, true);
  view.setUint16(offset + RecordField.channelLength, channelBytes.length, true);
  return stride;
}

/** (b) Records encoded once per turn into a scratch buffer, then one ArrayBuffer cloned to each worker. */
class ArrayBufferHandoff implements Handoff {
  private bytes = new Uint8Array(64 * 1024);
  private view = new DataView(this.bytes.buffer);
  private used = 0;
  private entries = 0;

  constructor(
    private readonly workers: readonly Worker[],
    private readonly gate: BacklogGate,
    readonly overflow: Overflow,
  ) {}

  publish(topic: string, channel: string, payload: string, receivedAt: number): void {
    const room = maxRecordBytes(topic, channel, payload);
    if (this.used + room > this.bytes.length) this.grow(this.used + room);
    this.used += writeRecord(this.bytes, this.view, this.used, topic, channel, payload, receivedAt);
    this.entries++;
  }

  flush(): void {
    if (this.entries === 0) return;
    const batch = this.bytes.slice(0, this.used).buffer;
    this.workers.forEach((worker, w) => {
      if (this.gate.admit(w, batch.byteLength)) worker.postMessage(batch satisfies ToWorker);
      else this.overflow.dropped[w]! += this.entries;
    });
    this.used = 0;
    this.entries = 0;
  }

  private grow(atLeast: number): void {
    const bytes = new Uint8Array(Math.max(atLeast, 2 * this.bytes.length));
    bytes.set(this.bytes.subarray(0, this.used));
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer);
  }
}

/**
 * (c) One ring shared by all workers, each with its own read cursor. Every record is written once;
 * the write cursor is published once per turn, and each worker woken at most once per turn. Nothing
 * the slowest worker has not read is ever overwritten: a record that does not fit is dropped for every
 * worker, or the producer blocks until it fits.
 */
class RingHandoff implements Handoff {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly size: number;
  private writeCursor = 0;
  private publishedCursor = 0;
  /** The slowest worker and its read cursor when last looked at; it can only have moved on since. */
  private slowestWorker = 0;
  private slowestRead = 0;

  constructor(
    ring: SharedArrayBuffer,
    private readonly control: Int32Array,
    private readonly workers: readonly Worker[],
    private readonly wake: 'notice' | 'waitasync',
    readonly overflow: Overflow,
  ) {
    this.bytes = new Uint8Array(ring);
    this.view = new DataView(ring);
    this.size = ring.byteLength;
  }

  publish(topic: string, channel: string, payload: string, receivedAt: number): void {
    const room = maxRecordBytes(topic, channel, payload);
    let position = this.writeCursor & (this.size - 1);
    const tail = this.size - position;
    const wraps = room > tail;
    if (!this.makeRoom(wraps ? tail + room : room)) {
      for (let w = 0; w < this.workers.length; w++) this.overflow.dropped[w]!++;
      return;
    }
    if (wraps) {
      this.view.setUint32(position + RecordField.stride, WRAP_MARKER, true);
      this.writeCursor = (this.writeCursor + tail) >>> 0;
      position = 0;
    }
    const stride = writeRecord(this.bytes, this.view, position, topic, channel, payload, receivedAt);
    this.writeCursor = (this.writeCursor + stride) >>> 0;
  }

  flush(): void {
    if (this.writeCursor === this.publishedCursor) return;
    Atomics.store(this.control, WRITE_CURSOR_SLOT, this.writeCursor | 0);
    this.publishedCursor = this.writeCursor;
    if (this.wake === 'waitasync') {
      Atomics.notify(this.control, WRITE_CURSOR_SLOT);
      return;
    }
    // Ring only the workers that said they were idle; a busy worker rechecks the cursor before sleeping.
    this.workers.forEach((worker, w) => {
      if (Atomics.exchange(this.control, idleSlot(w), 0) === 1) worker.postMessage(0 satisfies ToWorker);
    });
  }

  /** Whether the `bytes` after the write cursor are free; under `block`, waits until they are. */
  private makeRoom(bytes: number): boolean {
    if (this.free() >= bytes) return true;
    this.findSlowestReader();
    if (this.free() >= bytes) return true;
    if (this.overflow.policy === 'drop' || bytes > this.size) return false;
    this.flush(); // the workers can only make room once they can read what this turn has written
    while (this.free() < bytes) {
      this.overflow.waitForProgress(this.control, consumedSlot(this.slowestWorker), this.slowestRead);
      this.findSlowestReader();
    }
    return true;
  }

  private free(): number {
    return this.size - ((this.writeCursor - this.slowestRead) >>> 0);
  }

  private findSlowestReader(): void {
    let furthestBehind = -1;
    for (let w = 0; w < this.workers.length; w++) {
      const read = Atomics.load(this.control, consumedSlot(w)) >>> 0;
      const behind = (this.writeCursor - read) >>> 0;
      if (behind > furthestBehind) {
        furthestBehind = behind;
        this.slowestWorker = w;
        this.slowestRead = read;
      }
    }
  }
}

function createHandoff(
  mechanism: Mechanism,
  workers: readonly Worker[],
  control: SharedArrayBuffer,
  ring: SharedArrayBuffer | null,
  policy: OverflowPolicy,
  bufferBytes: number,
): Handoff {
  const slots = new Int32Array(control);
  const overflow = new Overflow(policy, workers.length);
  switch (mechanism) {
    case 'string':
      return new StringHandoff(workers, new BacklogGate(slots, overflow, bufferBytes), overflow);
    case 'arraybuffer':
      return new ArrayBufferHandoff(workers, new BacklogGate(slots, overflow, bufferBytes), overflow);
    case 'sab-notice':
      return new RingHandoff(ring!, slots, workers, 'notice', overflow);
    case 'sab-waitasync':
      return new RingHandoff(ring!, slots, workers, 'waitasync', overflow);
  }
}

// --- Workers ----------------------------------------------------------------------------------

function nextMessage(worker: Worker): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: FromWorker): void => {
      worker.off('error', onError);
      resolve(message);
    };
    const onError = (error: Error): void => {
      worker.off('message', onMessage);
      reject(error);
    };
    worker.once('message', onMessage);
    worker.once('error', onError);
  });
}

async function startWorker(setup: WorkerSetup): Promise<Worker> {
  const worker = new Worker(new URL('./handoff-worker.js', import.meta.url), { workerData: setup });
  const message = await nextMessage(worker);
  if (message.type !== 'ready') throw new Error(`worker ${setup.index}: expected ready, got ${message.type}`);
  return worker;
}

async function stopWorker(worker: Worker): Promise<WorkerReport> {
  const reply = nextMessage(worker);
  worker.postMessage({ type: 'stop' } satisfies ToWorker);
  const message = await reply;
  if (message.type !== 'report') throw new Error(`expected a report, got ${message.type}`);
  await worker.terminate();
  return message;
}

// --- Producer ---------------------------------------------------------------------------------

/** CPU time of the whole machine so far (all cores, all processes), in ms. */
interface HostCpu {
  busyMs: number;
  totalMs: number;
}

function hostCpu(): HostCpu {
  let busyMs = 0;
  let totalMs = 0;
  for (const { times } of os.cpus()) {
    busyMs += times.user + times.nice + times.sys + times.irq;
    totalMs += times.user + times.nice + times.sys + times.irq + times.idle;
  }
  return { busyMs, totalMs };
}

interface Snapshot {
  at: number;
  produced: number;
  dropped: number[];
  stalledMs: number;
  processCpu: NodeJS.CpuUsage;
  host: HostCpu;
  elu: EventLoopUtilization;
  mainCpuNs: number | null;
}

interface ProducerWindow {
  measureFrom: number;
  begin: Snapshot;
  end: Snapshot;
}

/**
 * The load: a batch of `batchSize` messages every turn, as fast as the event loop turns (waiting for
 * the workers only under `block`), for warm-up and then the measured window. Messages produced in the
 * window are exactly those with receivedAt >= measureFrom, which is also how the workers tell them apart.
 */
function produce(
  handoff: Handoff,
  pool: readonly Message[],
  batchSize: number,
  options: Options,
  measureFromSlot: Float64Array,
): Promise<ProducerWindow> {
  const measureFrom = epochMs() + options.warmupMs;
  const measureUntil = measureFrom + options.durationMs;
  measureFromSlot[0] = measureFrom;
  let produced = 0;
  let next = 0;
  let begin: Snapshot | undefined;
  const snapshot = (at: number): Snapshot => ({
    at,
    produced,
    dropped: [...handoff.overflow.dropped],
    stalledMs: handoff.overflow.stalledMs,
    processCpu: process.cpuUsage(),
    host: hostCpu(),
    elu: performance.eventLoopUtilization(),
    mainCpuNs: threadCpuNs(),
  });

  return new Promise((resolve) => {
    const turn = (): void => {
      const receivedAt = epochMs();
      if (begin === undefined && receivedAt >= measureFrom) begin = snapshot(receivedAt);
      if (receivedAt >= measureUntil) {
        resolve({ measureFrom, begin: begin!, end: snapshot(receivedAt) });
        return;
      }
      for (let i = 0; i < batchSize; i++) {
        const message = pool[next]!;
        next = next + 1 === pool.length ? 0 : next + 1;
        handoff.publish(message.topic, message.channel, message.payload, receivedAt);
      }
      handoff.flush();
      produced += batchSize;
      setImmediate(turn);
    };
    setImmediate(turn);
  });
}

// --- One point --------------------------------------------------------------------------------

interface Point {
  policy: OverflowPolicy;
  mechanism: Mechanism;
  workers: number;
  batchSize: number;
}

interface PointResult extends Point {
  round: number;
  /** Messages the main thread produced per second of the window. */
  offeredPerSec: number;
  /** Per worker (each worker gets every message): mean and slowest worker. */
  deliveredPerSecPerWorker: number;
  deliveredPerSecSlowestWorker: number;
  /** Share of message deliveries dropped because a worker was --buffer-kib behind (`drop`). */
  droppedPct: number;
  /** Share of the window the main thread spent blocked waiting for a worker (`block`). */
  stalledPct: number;
  /** Main thread's CPU time (schedstat) per 1000 messages handed to the workers; null if not measurable. */
  mainCpuMsPer1k: number | null;
  /** Main thread's event-loop utilisation over the window. */
  mainElu: number;
  /** Worker threads' CPU time per 1000 messages each one decoded. */
  workerCpuMsPer1k: number | null;
  /** process.cpuUsage (all threads), from the window's start until the workers drained, per 1000 deliveries. */
  processCpuMsPer1kDeliveries: number;
  /**
   * Share of the machine's CPU that other processes used during the window: if well above 0, the
   * point competed with something else and its figures are suspect.
   */
  othersCpuPct: number;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  latencyMaxMs: number | null;
  produced: number;
  delivered: number[];
  dropped: number[];
  /** Produced - delivered - dropped, per worker: 0 unless messages went missing. */
  unaccounted: number[];
}

async function runPoint(
  { policy, mechanism, workers: workerCount, batchSize }: Point,
  round: number,
  pool: readonly Message[],
  options: Options,
): Promise<PointResult> {
  const control = new SharedArrayBuffer(controlBlockBytes(workerCount));
  const ring = isRingMechanism(mechanism) ? new SharedArrayBuffer(options.bufferBytes) : null;
  const workers = await Promise.all(
    Array.from({ length: workerCount }, (_, index) => startWorker({ mechanism, index, control, ring })),
  );
  const handoff = createHandoff(mechanism, workers, control, ring, policy, options.bufferBytes);
  const measureFromSlot = new Float64Array(control, MEASURE_FROM_F64_INDEX * 8, 1);
  const { measureFrom, begin, end } = await produce(handoff, pool, batchSize, options, measureFromSlot);
  const reports = await Promise.all(workers.map(stopWorker));

  const windowSec = (end.at - begin.at) / 1000;
  const produced = end.produced - begin.produced;
  const dropped = end.dropped.map((n, w) => n - begin.dropped[w]!);
  const totalDropped = dropped.reduce((sum, n) => sum + n, 0);
  const handedOff = produced - totalDropped / workerCount;
  const delivered = reports.map((report) => report.delivered);
  const totalDelivered = delivered.reduce((sum, n) => sum + n, 0);
  const perWorkerRates = reports.map(
    (report) => report.delivered / ((Math.max(report.lastDeliveredAt, end.at) - measureFrom) / 1000),
  );
  const cpu = process.cpuUsage(begin.processCpu);
  const workerCpuNs = reports.every((r) => r.cpuNs !== null)
    ? reports.reduce((sum, r) => sum + r.cpuNs!, 0)
    : null;
  const workerDecoded = reports.reduce((sum, r) => sum + r.deliveredTotal, 0);
  const histograms = reports.map((report) => report.latency);
  const per1k = (ms: number, count: number): number => (count === 0 ? 0 : ms / (count / 1000));

  return {
    policy,
    mechanism,
    workers: workerCount,
    batchSize,
    round,
    offeredPerSec: produced / windowSec,
    deliveredPerSecPerWorker: perWorkerRates.reduce((sum, r) => sum + r, 0) / workerCount,
    deliveredPerSecSlowestWorker: Math.min(...perWorkerRates),
    droppedPct: (100 * totalDropped) / (produced * workerCount),
    stalledPct: (100 * (end.stalledMs - begin.stalledMs)) / (end.at - begin.at),
    mainCpuMsPer1k:
      begin.mainCpuNs === null || end.mainCpuNs === null
        ? null
        : per1k((end.mainCpuNs - begin.mainCpuNs) / 1e6, handedOff),
    mainElu: performance.eventLoopUtilization(end.elu, begin.elu).utilization,
    workerCpuMsPer1k: workerCpuNs === null ? null : per1k(workerCpuNs / 1e6, workerDecoded),
    processCpuMsPer1kDeliveries: per1k((cpu.user + cpu.system) / 1000, totalDelivered),
    othersCpuPct: othersCpuPct(begin, end),
    latencyP50Ms: quantileMs(histograms, 0.5),
    latencyP99Ms: quantileMs(histograms, 0.99),
    latencyMaxMs: quantileMs(histograms, 1),
    produced,
    delivered,
    dropped,
    unaccounted: delivered.map((n, w) => produced - n - dropped[w]!),
  };
}

/** How much of the machine's CPU went to other processes between two snapshots, in percent. */
function othersCpuPct(begin: Snapshot, end: Snapshot): number {
  const hostBusyMs = end.host.busyMs - begin.host.busyMs;
  const hostTotalMs = end.host.totalMs - begin.host.totalMs;
  const ownMs =
    (end.processCpu.user - begin.processCpu.user + end.processCpu.system - begin.processCpu.system) / 1000;
  return hostTotalMs <= 0 ? 0 : Math.max(0, (100 * (hostBusyMs - ownMs)) / hostTotalMs);
}

// --- Report -----------------------------------------------------------------------------------

const MECHANISM_LABELS: Record<Mechanism, string> = {
  string: '(a) string',
  arraybuffer: '(b) arraybuffer',
  'sab-notice': '(c) sab ring + notice',
  'sab-waitasync': '(c) sab ring + waitAsync',
};

const integer = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (digits: number) => (n: number | null) => (n === null ? 'n/a' : n.toFixed(digits));

const POLICY_TITLES: Record<OverflowPolicy, string> = {
  block: 'When a worker is --buffer-kib behind, main blocks until it catches up (backpressure)',
  drop: 'When a worker is --buffer-kib behind, its messages are dropped (open loop)',
};

/** A point's median run by delivered rate, with the range of that rate over all its rounds. */
interface PointSummary {
  median: PointResult;
  deliveredPerSecPerWorkerRange: [number, number];
}

function summarise(runs: readonly PointResult[]): PointSummary {
  const sorted = [...runs].sort((a, b) => a.deliveredPerSecPerWorker - b.deliveredPerSecPerWorker);
  return {
    median: sorted[Math.floor((sorted.length - 1) / 2)]!,
    deliveredPerSecPerWorkerRange: [
      sorted[0]!.deliveredPerSecPerWorker,
      sorted[sorted.length - 1]!.deliveredPerSecPerWorker,
    ],
  };
}

type Column = [title: string, cell: (run: PointResult, summary: PointSummary) => string];

function markdownTable(policy: OverflowPolicy, summaries: readonly PointSummary[], rounds: number): string {
  const range: Column = [
    `range over ${rounds} rounds`,
    (_run, { deliveredPerSecPerWorkerRange: [min, max] }) => `${integer(min)}–${integer(max)}`,
  ];
  const columns: Column[] = [
    ['mechanism', (r) => MECHANISM_LABELS[r.mechanism]],
    ['workers', (r) => String(r.workers)],
    ['batch', (r) => String(r.batchSize)],
    ['offered msg/s', (r) => integer(r.offeredPerSec)],
    ['delivered msg/s per worker', (r) => integer(r.deliveredPerSecPerWorker)],
    ...(rounds > 1 ? [range] : []),
    policy === 'drop'
      ? ['dropped %', (r) => fixed(1)(r.droppedPct)]
      : ['main stalled %', (r) => fixed(1)(r.stalledPct)],
    ['main CPU ms/1k', (r) => fixed(3)(r.mainCpuMsPer1k)],
    ['main ELU', (r) => fixed(2)(r.mainElu)],
    ['worker CPU ms/1k', (r) => fixed(3)(r.workerCpuMsPer1k)],
    ['all CPU ms/1k deliveries', (r) => fixed(3)(r.processCpuMsPer1kDeliveries)],
    ['p50 ms', (r) => fixed(3)(r.latencyP50Ms)],
    ['p99 ms', (r) => fixed(3)(r.latencyP99Ms)],
    ['others CPU %', (r) => fixed(0)(r.othersCpuPct)],
  ];
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    `### ${POLICY_TITLES[policy]}`,
    '',
    row(columns.map(([title]) => title)),
    row(columns.map((_, i) => (i < 3 ? '---' : '---:'))),
    ...summaries
      .filter((summary) => summary.median.policy === policy)
      .map((summary) => row(columns.map(([, cell]) => cell(summary.median, summary)))),
  ].join('\n');
}

function writeJson(
  options: Options,
  startedAt: Date,
  summaries: readonly PointSummary[],
  runs: readonly PointResult[],
): string {
  const directory = fileURLToPath(new URL('../../bench/out/', import.meta.url)); // from dist/bench/
  mkdirSync(directory, { recursive: true });
  const file = `${directory}handoff-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`;
  const environment = {
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
  };
  const report = { startedAt: startedAt.toISOString(), argv: process.argv.slice(2), environment, options };
  writeFileSync(file, `${JSON.stringify({ ...report, summaries, runs }, null, 2)}\n`);
  return file;
}

const samePoint = (a: Point, b: Point): boolean =>
  a.policy === b.policy &&
  a.mechanism === b.mechanism &&
  a.workers === b.workers &&
  a.batchSize === b.batchSize;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const pool = messagePool(4096);
  const points = options.policies.flatMap((policy) =>
    options.mechanisms.flatMap((mechanism) =>
      options.workerCounts.flatMap((workers) =>
        options.batchSizes.map((batchSize): Point => ({ policy, mechanism, workers, batchSize })),
      ),
    ),
  );
  const runs: PointResult[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    for (const point of points) {
      const run = await runPoint(point, round, pool, options);
      runs.push(run);
      console.error(
        `round ${round}: ${point.policy} ${MECHANISM_LABELS[point.mechanism]} workers=${point.workers} ` +
          `batch=${point.batchSize}: ${integer(run.deliveredPerSecPerWorker)} msg/s per worker, ` +
          `dropped ${fixed(1)(run.droppedPct)}%, stalled ${fixed(1)(run.stalledPct)}%, ` +
          `others CPU ${fixed(0)(run.othersCpuPct)}%`,
      );
      if (run.unaccounted.some((n) => n !== 0)) {
        console.error(`  warning: messages unaccounted for, per worker: ${run.unaccounted.join(', ')}`);
      }
    }
  }
  const summaries = points.map((point) => summarise(runs.filter((run) => samePoint(run, point))));
  console.log(
    options.policies.map((policy) => markdownTable(policy, summaries, options.rounds)).join('\n\n'),
  );
  console.error(`\nwrote ${writeJson(options, startedAt, summaries, runs)}`);
}

await main();
