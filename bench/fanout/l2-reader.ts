/**
 * Reads the few fields the load generator needs from a message's bytes, without a string or
 * JSON.parse: its type, and for an l2update its product, sequence and time.
 *
 * Every server here writes an l2update as JSON.stringify of
 *   {"type":"l2update","product_id":"…","changes":[…],"time":"YYYY-MM-DDTHH:MM:SS.ffffffZ","sequence":N}
 * (Socket.IO wraps it as 42["l2update",{…}]). The fast path reads product_id right after the type
 * and time and sequence back from the end, checking the bytes around each; anything else falls back
 * to searching for the keys, so a different field order is slower, not wrong.
 */

const TYPE_KEY = Buffer.from('"type":"');
const PRODUCT_KEY = Buffer.from('"product_id":"');
const TIME_KEY = Buffer.from('"time":"');
const SEQUENCE_KEY = Buffer.from('"sequence":');
/** `l2update",` then `"product_id":"`: from the type's first byte to the product's. */
const PRODUCT_AFTER_TYPE = 'l2update",'.length + PRODUCT_KEY.length;
const ISO_LENGTH = '2026-11-29T05:13:26.525189Z'.length;

const QUOTE = 0x22;
const COLON = 0x3a;
const COMMA = 0x2c;
const BRACE_CLOSE = 0x7d;
const BRACKET_CLOSE = 0x5d;
const LETTER_Z = 0x5a;

export const MessageKind = {
  Other: 0,
  L2Update: 1,
  Snapshot: 2,
  Subscriptions: 3,
  Error: 4,
} as const;
export type MessageKind = (typeof MessageKind)[keyof typeof MessageKind];

function startsWith(buffer: Buffer, at: number, needle: Buffer): boolean {
  if (at + needle.length > buffer.length) return false;
  for (let i = 0; i < needle.length; i++) if (buffer[at + i] !== needle[i]) return false;
  return true;
}

/** Where the type's value starts (after "type":"), or -1. */
export function typeValueAt(buffer: Buffer, start: number, end: number): number {
  if (startsWith(buffer, start + 1, TYPE_KEY)) return start + 1 + TYPE_KEY.length;
  const at = buffer.indexOf(TYPE_KEY, start);
  return at < 0 || at >= end ? -1 : at + TYPE_KEY.length;
}

export function kindAt(buffer: Buffer, typeAt: number): MessageKind {
  const a = buffer[typeAt];
  const b = buffer[typeAt + 1];
  if (a === 0x6c && b === 0x32) return MessageKind.L2Update; // l2
  if (a === 0x73 && b === 0x6e) return MessageKind.Snapshot; // sn
  if (a === 0x73 && b === 0x75) return MessageKind.Subscriptions; // su
  if (a === 0x65 && b === 0x72) return MessageKind.Error; // er
  return MessageKind.Other;
}

/** Maps a product id's bytes to its topic index by a hash of them (checked for collisions up front). */
export class TopicIndex {
  private readonly byHash = new Map<number, number>();

  constructor(readonly topics: readonly string[]) {
    topics.forEach((topic, index) => {
      const bytes = Buffer.from(topic);
      const hash = hashOf(bytes, 0, bytes.length);
      if (this.byHash.has(hash)) throw new Error(`topic hash collision: ${topic}`);
      this.byHash.set(hash, index);
    });
  }

  /** The topic whose id starts at `at` (ends at the next quote), or -1. */
  at(buffer: Buffer, at: number): number {
    const end = buffer.indexOf(QUOTE, at);
    if (end < 0) return -1;
    return this.byHash.get(hashOf(buffer, at, end)) ?? -1;
  }

  /** The product of a message (by key search), or -1. */
  find(buffer: Buffer, start: number, end: number): number {
    const at = buffer.indexOf(PRODUCT_KEY, start);
    return at < 0 || at >= end ? -1 : this.at(buffer, at + PRODUCT_KEY.length);
  }

  /** The product of an l2update whose type value starts at `typeAt`. */
  ofUpdate(buffer: Buffer, typeAt: number, end: number): number {
    const at = typeAt + PRODUCT_AFTER_TYPE;
    if (buffer[at - 1] === QUOTE && buffer[at - 2] === COLON) return this.at(buffer, at);
    return this.find(buffer, typeAt, end);
  }
}

function hashOf(buffer: Buffer, from: number, to: number): number {
  let hash = 0;
  for (let i = from; i < to; i++) hash = (Math.imul(hash, 31) + buffer[i]!) | 0;
  return hash;
}

/** Sequence and time of an l2update: reused between calls (the reader allocates nothing). */
export interface UpdateFields {
  sequence: number;
  timeEpochMs: number;
}

let cachedHourKey = -1;
let cachedHourEpochMs = 0;

/** Epoch ms (with microseconds) of a YYYY-MM-DDTHH:MM:SS[.f…]Z time starting at `at`; NaN if malformed. */
export function isoEpochMs(buffer: Buffer, at: number): number {
  const d = (i: number) => buffer[at + i]! - 48;
  const year = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
  const month = d(5) * 10 + d(6);
  const day = d(8) * 10 + d(9);
  const hour = d(11) * 10 + d(12);
  const hourKey = ((year * 100 + month) * 100 + day) * 100 + hour;
  if (hourKey !== cachedHourKey) {
    cachedHourEpochMs = Date.UTC(year, month - 1, day, hour);
    cachedHourKey = hourKey;
  }
  let ms = cachedHourEpochMs + (d(14) * 10 + d(15)) * 60_000 + (d(17) * 10 + d(18)) * 1000;
  if (buffer[at + 19] === 0x2e) {
    let scale = 100;
    for (let i = 20; buffer[at + i] !== LETTER_Z && i < 30; i++) {
      const digit = d(i);
      if (digit < 0 || digit > 9) return Number.NaN;
      ms += digit * scale;
      scale /= 10;
    }
  }
  return ms;
}

/**
 * Fills `out` with the update's sequence and time; false if they cannot be read. Fast path: the
 * message ends with "time":"<27 bytes>","sequence":N} (and ] for Socket.IO).
 */
export function readUpdate(buffer: Buffer, typeAt: number, end: number, out: UpdateFields): boolean {
  let p = end - 1;
  if (buffer[p] === BRACKET_CLOSE) p--;
  if (buffer[p] === BRACE_CLOSE) {
    let sequence = 0;
    let scale = 1;
    let q = p - 1;
    for (let c = buffer[q]!; c >= 48 && c <= 57; c = buffer[--q]!) {
      sequence += (c - 48) * scale;
      scale *= 10;
    }
    // q is now on the colon of "sequence":
    const timeAt = q - SEQUENCE_KEY.length - 2 - ISO_LENGTH + 1;
    if (
      scale > 1 &&
      buffer[q] === COLON &&
      buffer[q - SEQUENCE_KEY.length] === COMMA &&
      buffer[timeAt - 1] === QUOTE &&
      buffer[timeAt + ISO_LENGTH] === QUOTE &&
      buffer[timeAt + ISO_LENGTH - 1] === LETTER_Z
    ) {
      out.sequence = sequence;
      out.timeEpochMs = isoEpochMs(buffer, timeAt);
      return !Number.isNaN(out.timeEpochMs);
    }
  }
  return readBySearch(buffer, typeAt, end, out);
}

/** Any field order: sequence and time found by their keys. */
export function readBySearch(buffer: Buffer, from: number, end: number, out: UpdateFields): boolean {
  const sequenceAt = buffer.indexOf(SEQUENCE_KEY, from);
  const timeAt = buffer.indexOf(TIME_KEY, from);
  if (sequenceAt < 0 || sequenceAt >= end || timeAt < 0 || timeAt >= end) return false;
  let sequence = 0;
  let i = sequenceAt + SEQUENCE_KEY.length;
  for (let c = buffer[i]!; c >= 48 && c <= 57; c = buffer[++i]!) sequence = sequence * 10 + c - 48;
  if (i === sequenceAt + SEQUENCE_KEY.length) return false;
  out.sequence = sequence;
  out.timeEpochMs = isoEpochMs(buffer, timeAt + TIME_KEY.length);
  return !Number.isNaN(out.timeEpochMs);
}

/** The sequence of a snapshot (any position), or -1. */
export function snapshotSequence(buffer: Buffer, from: number, end: number): number {
  const at = buffer.indexOf(SEQUENCE_KEY, from);
  if (at < 0 || at >= end) return -1;
  let sequence = 0;
  let i = at + SEQUENCE_KEY.length;
  for (let c = buffer[i]!; c >= 48 && c <= 57; c = buffer[++i]!) sequence = sequence * 10 + c - 48;
  return i === at + SEQUENCE_KEY.length ? -1 : sequence;
}

/** The "code" of an error message, for counting. */
export function errorCode(buffer: Buffer, start: number, end: number): string {
  const text = buffer.toString('utf8', start, end);
  const match = /"code":"([^"]*)"/.exec(text) ?? /"message":"([^"]*)"/.exec(text);
  return match?.[1] ?? 'unknown';
}
