/// <reference lib="es2024.sharedmemory" />
// (for Atomics.waitAsync, which Node 20 has but the project's ES2023 lib does not declare)
/**
 * Worker side of bench/handoff.ts, and the wire formats and shared layouts both sides use.
 *
 * Each worker stands in for one uWS thread: it takes the batches the main thread hands it, decodes
 * every entry into (topic, channel, receivedAt, payload) as it would before `app.publish`, counts
 * it and records the handoff latency. Importing this module on the main thread only brings in the
 * shared definitions; the worker loop starts only inside a worker.
 */
import { readFileSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';

export const MECHANISMS = ['string', 'arraybuffer', 'sab-notice', 'sab-waitasync'] as const;
export type Mechanism = (typeof MECHANISMS)[number];

export function isRingMechanism(mechanism: Mechanism): boolean {
  return mechanism === 'sab-notice' || mechanism === 'sab-waitasync';
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across threads. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * CPU time consumed so far by the calling OS thread, in nanoseconds (Linux schedstat), or null where
 * that is not available. Node 20 has no per-thread `cpuUsage`.
 */
export function threadCpuNs(): number | null {
  try {
    const stat = readFileSync('/proc/thread-self/schedstat', 'latin1');
    return Number(stat.slice(0, stat.indexOf(' ')));
  } catch {
    return null;
  }
}

// --- (a) string framing ---------------------------------------------------------------------------

/** Separates every field of every entry: topic, channel, receivedAt, payload, topic, ... */
export const FIELD_SEPARATOR = '\0';
export const FIELDS_PER_ENTRY = 4;

// --- (b), (c) binary records ----------------------------------------------------------------------

/*
 * One entry, little-endian, starting on an 8-byte boundary:
 *    0  u32  stride: bytes from this record to the next (header, strings, padding); 0 marks a ring wrap
 *    4  u32  payload byte length
 *    8  f64  receivedAt (epoch ms)
 *   16  u16  topic byte length
 *   18  u16  channel byte length
 *   20       topic, channel and payload bytes (UTF-8), then zero to 7 bytes of padding
 */
export const RECORD_HEADER_BYTES = 20;
export const RECORD_ALIGN = 8;
export const WRAP_MARKER = 0;

/** Byte offsets of the header fields within a record. */
export const RecordField = {
  stride: 0,
  payloadLength: 4,
  receivedAt: 8,
  topicLength: 16,
  channelLength: 18,
} as const;

// --- Shared control block ---------------------------------------------------------------------

/*
 * One SharedArrayBuffer per run, viewed as Int32 slots. Every writer gets its own 64-byte line so the
 * producer and the consumers do not false-share:
 *   line 0       ring write cursor (bytes, u32 wrapping), written by main
 *   line 1       measurement start (f64 epoch ms), written by main before the first message
 *   line 2 + w   worker w: bytes consumed (u32 wrapping; the read cursor for the ring), then its idle flag
 */
const INT32_PER_LINE = 16;
export const WRITE_CURSOR_SLOT = 0;
export const MEASURE_FROM_F64_INDEX = INT32_PER_LINE / 2;
export const consumedSlot = (worker: number): number => (2 + worker) * INT32_PER_LINE;
export const idleSlot = (worker: number): number => consumedSlot(worker) + 1;
export const controlBlockBytes = (workers: number): number => (2 + workers) * INT32_PER_LINE * 4;

// --- Latency histogram ----------------------------------------------------------------------------

/*
 * Log-linear buckets over whole microseconds: exact below 64 µs, then 32 buckets per power of two
 * (at most 1/32 relative error) up to 2^31 µs.
 */
const SUB_BUCKET_BITS = 5;
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS;
const MAX_MICROS = 0x7fffffff;
export const HISTOGRAM_BUCKETS = (32 - SUB_BUCKET_BITS) * SUB_BUCKETS;

function bucketOf(micros: number): number {
  if (micros < 2 * SUB_BUCKETS) return micros;
  const exponent = 31 - Math.clz32(micros);
  return (exponent - SUB_BUCKET_BITS) * SUB_BUCKETS + (micros >>> (exponent - SUB_BUCKET_BITS));
}

/** The middle of a bucket, in milliseconds. */
function bucketMidpointMs(bucket: number): number {
  if (bucket < 2 * SUB_BUCKETS) return bucket / 1000;
  const shift = Math.floor(bucket / SUB_BUCKETS) - 1;
  const lower = ((bucket % SUB_BUCKETS) + SUB_BUCKETS) * 2 ** shift;
  return (lower + 2 ** shift / 2) / 1000;
}

export function recordLatency(counts: Uint32Array, ms: number): void {
  const micros = ms <= 0 ? 0 : ms >= MAX_MICROS / 1000 ? MAX_MICROS : Math.trunc(ms * 1000);
  counts[bucketOf(micros)]!++;
}

/** The q-quantile (0..1) of the histograms combined, in milliseconds; null when they are empty. */
export function quantileMs(histograms: readonly Uint32Array[], q: number): number | null {
  const merged = new Float64Array(HISTOGRAM_BUCKETS);
  for (const counts of histograms) for (let i = 0; i < HISTOGRAM_BUCKETS; i++) merged[i]! += counts[i]!;
  const total = merged.reduce((sum, n) => sum + n, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
    seen += merged[i]!;
    if (seen >= rank) return bucketMidpointMs(i);
  }
  return bucketMidpointMs(HISTOGRAM_BUCKETS - 1);
}

// --- Messages between the threads -------------------------------------------------------------

export interface WorkerSetup {
  mechanism: Mechanism;
  index: number;
  control: SharedArrayBuffer;
  /** The ring's data area, for the ring mechanisms; its size is a power of two. */
  ring: SharedArrayBuffer | null;
}

export interface StopCommand {
  type: 'stop';
}

/** A string batch (a), an ArrayBuffer batch (b), a doorbell (sab-notice), or a command. */
export type ToWorker = string | ArrayBuffer | number | StopCommand;

export interface WorkerReport {
  type: 'report';
  /** Entries received after the measurement start, i.e. with receivedAt at or after it. */
  delivered: number;
  /** Entries received in total, warm-up included. */
  deliveredTotal: number;
  /** When the last measured entry was decoded (epoch ms). */
  lastDeliveredAt: number;
  /** This thread's CPU time from ready to stop, in ns; null where not measurable. */
  cpuNs: number | null;
  /** Handoff latency of the measured entries (see quantileMs). */
  latency: Uint32Array;
  /** Sum of the decoded lengths, so that no decoding can be optimised away. */
  checksum: number;
}

export type FromWorker = { type: 'ready' } | WorkerReport;

// --- Worker -------------------------------------------------------------------------------------

/** What a uWS thread would do with each entry, short of publishing it: count it and time it. */
class Deliveries {
  private delivered = 0;
  private deliveredTotal = 0;
  private lastDeliveredAt = 0;
  private checksum = 0;
  private readonly latency = new Uint32Array(HISTOGRAM_BUCKETS);
  private readonly cpuAtStart = threadCpuNs();

  constructor(private readonly measureFrom: Float64Array) {}

  deliver(topic: string, channel: string, receivedAt: number, payload: string | Uint8Array): void {
    this.deliveredTotal++;
    this.checksum = (this.checksum + topic.length + channel.length + payload.length) | 0;
    if (receivedAt < this.measureFrom[0]!) return;
    const now = epochMs();
    recordLatency(this.latency, now - receivedAt);
    this.lastDeliveredAt = now;
    this.delivered++;
  }

  report(): WorkerReport {
    const cpuNow = threadCpuNs();
    return {
      type: 'report',
      delivered: this.delivered,
      deliveredTotal: this.deliveredTotal,
      lastDeliveredAt: this.lastDeliveredAt,
      cpuNs: cpuNow === null || this.cpuAtStart === null ? null : cpuNow - this.cpuAtStart,
      latency: this.latency,
      checksum: this.checksum,
    };
  }
}

/**
 * Turns topic and channel bytes back into strings. There are few distinct names (channels x products),
 * so each is decoded once and then found again by an FNV-1a hash of its bytes, checked byte for byte:
 * about a quarter of the cost of a TextDecoder call per name.
 */
class NameDecoder {
  private readonly decoder = new TextDecoder();
  private readonly names = new Map<number, { bytes: Uint8Array; name: string }>();

  decode(bytes: Uint8Array, start: number, end: number): string {
    let hash = 0x811c9dc5;
    for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
    const known = this.names.get(hash);
    if (known !== undefined && NameDecoder.equal(known.bytes, bytes, start, end)) return known.name;
    const copy = bytes.slice(start, end);
    const name = this.decoder.decode(copy);
    this.names.set(hash, { bytes: copy, name });
    return name;
  }

  private static equal(known: Uint8Array, bytes: Uint8Array, start: number, end: number): boolean {
    if (known.length !== end - start) return false;
    for (let i = 0; i < known.length; i++) if (known[i] !== bytes[start + i]) return false;
    return true;
  }
}

const names = new NameDecoder();

/** Reads the binary records of (b) and (c); payloads stay views over the batch or the ring. */
class RecordReader {
  private readonly view: DataView;
  private readonly bytes: Uint8Array;

  constructor(buffer: ArrayBuffer | SharedArrayBuffer) {
    this.view = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
  }

  /** Delivers the record at `offset` and returns its stride (WRAP_MARKER for a ring wrap). */
  deliver(offset: number, deliveries: Deliveries): number {
    const stride = this.view.getUint32(offset + RecordField.stride, true);
    if (stride === WRAP_MARKER) return WRAP_MARKER;
    const payloadLength = this.view.getUint32(offset + RecordField.payloadLength, true);
    const receivedAt = this.view.getFloat64(offset + RecordField.receivedAt, true);
    const topicStart = offset + RECORD_HEADER_BYTES;
    const channelStart = topicStart + this.view.getUint16(offset + RecordField.topicLength, true);
    const payloadStart = channelStart + this.view.getUint16(offset + RecordField.channelLength, true);
    deliveries.deliver(
      names.decode(this.bytes, topicStart, channelStart),
      names.decode(this.bytes, channelStart, payloadStart),
      receivedAt,
      this.bytes.subarray(payloadStart, payloadStart + payloadLength),
    );
    return stride;
  }
}

function deliverString(batch: string, deliveries: Deliveries): void {
  const fields = batch.split(FIELD_SEPARATOR);
  for (let i = 0; i < fields.length; i += FIELDS_PER_ENTRY) {
    deliveries.deliver(fields[i]!, fields[i + 1]!, Number(fields[i + 2]), fields[i + 3]!);
  }
}

function deliverArrayBuffer(batch: ArrayBuffer, deliveries: Deliveries): void {
  const reader = new RecordReader(batch);
  for (let offset = 0; offset < batch.byteLength; ) offset += reader.deliver(offset, deliveries);
}

/** Publishes how far a worker has consumed, waking the producer if it is blocked waiting for room. */
function release(control: Int32Array, slot: number, consumed: number): void {
  Atomics.store(control, slot, consumed | 0);
  Atomics.notify(control, slot);
}

/**
 * The consuming end of the shared ring: one read cursor, published every eighth of the ring while
 * draining (so that the producer can reuse the space before a long drain ends) and after it.
 */
class RingConsumer {
  private readonly reader: RecordReader;
  private readonly size: number;
  private readCursor = 0;

  constructor(
    ring: SharedArrayBuffer,
    private readonly control: Int32Array,
    private readonly slot: number,
    private readonly deliveries: Deliveries,
  ) {
    this.reader = new RecordReader(ring);
    this.size = ring.byteLength;
  }

  /** Delivers everything published so far; returns the write cursor it drained up to. */
  drain(): number {
    const writeCursor = Atomics.load(this.control, WRITE_CURSOR_SLOT) >>> 0;
    const releaseEvery = this.size / 8;
    let read = this.readCursor;
    let released = read;
    while (read !== writeCursor) {
      const position = read & (this.size - 1);
      const stride = this.reader.deliver(position, this.deliveries);
      read = (read + (stride === WRAP_MARKER ? this.size - position : stride)) >>> 0;
      if ((read - released) >>> 0 >= releaseEvery) {
        release(this.control, this.slot, read);
        released = read;
      }
    }
    this.readCursor = read;
    release(this.control, this.slot, read);
    return writeCursor;
  }
}

function runWorker(port: MessagePort, setup: WorkerSetup): void {
  const control = new Int32Array(setup.control);
  const consumed = consumedSlot(setup.index);
  const deliveries = new Deliveries(
    new Float64Array(setup.control, 0, MEASURE_FROM_F64_INDEX + 1).subarray(MEASURE_FROM_F64_INDEX),
  );
  const ring = setup.ring === null ? null : new RingConsumer(setup.ring, control, consumed, deliveries);
  let bytesConsumed = 0;

  /*
   * Like a uWS thread, which must also serve its sockets, a worker that finds more published after a
   * drain yields to its event loop before draining again, rather than looping while main keeps up.
   */

  /** sab-notice: drain, then raise the idle flag so that main rings the doorbell for the next batch. */
  const drainUntilIdle = (consumer: RingConsumer): void => {
    const drainedTo = consumer.drain();
    Atomics.store(control, idleSlot(setup.index), 1);
    if (Atomics.load(control, WRITE_CURSOR_SLOT) >>> 0 === drainedTo) return;
    Atomics.store(control, idleSlot(setup.index), 0);
    setImmediate(drainUntilIdle, consumer);
  };

  /** sab-waitasync: drain whenever the write cursor moves, sleeping on it in between. */
  const waitLoop = async (consumer: RingConsumer): Promise<void> => {
    for (;;) {
      const drainedTo = consumer.drain();
      const wait = Atomics.waitAsync(control, WRITE_CURSOR_SLOT, drainedTo | 0);
      await (wait.async ? wait.value : nextTurn());
    }
  };

  port.on('message', (message: ToWorker) => {
    if (typeof message === 'string') {
      deliverString(message, deliveries);
      bytesConsumed = (bytesConsumed + message.length) >>> 0;
      release(control, consumed, bytesConsumed);
    } else if (message instanceof ArrayBuffer) {
      deliverArrayBuffer(message, deliveries);
      bytesConsumed = (bytesConsumed + message.byteLength) >>> 0;
      release(control, consumed, bytesConsumed);
    } else if (typeof message === 'number') {
      if (ring !== null) drainUntilIdle(ring);
    } else {
      ring?.drain();
      port.postMessage(deliveries.report() satisfies FromWorker);
    }
  });

  if (ring !== null) {
    if (setup.mechanism === 'sab-waitasync') void waitLoop(ring);
    else Atomics.store(control, idleSlot(setup.index), 1);
  }
  port.postMessage({ type: 'ready' } satisfies FromWorker);
}

if (!isMainThread && parentPort !== null) runWorker(parentPort, workerData as WorkerSetup);
