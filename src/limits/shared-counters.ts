/**
 * A fixed-size hash table of counters in a SharedArrayBuffer, shared by the main thread and every
 * worker, for counts that must be exact across the whole process (connections per client IP).
 *
 * Each key has one counter per column (one column per thread), and the key's value is their sum:
 * when a thread dies, clearing its column removes exactly what it held, so nothing leaks. Updates
 * take a short spin lock; they happen per connection, never per message.
 */

const EMPTY = 0;
const USED = 1;
const TOMBSTONE = 2;
const KEY_INTS = 4;
/** Header: [lock, used slots, tombstones]. */
const HEADER_INTS = 4;

export type CounterKey = Int32Array;

export class SharedCounterTable {
  private readonly ints: Int32Array;
  private readonly stride: number;

  private constructor(
    readonly buffer: SharedArrayBuffer,
    readonly capacity: number,
    readonly columns: number,
  ) {
    this.ints = new Int32Array(buffer);
    this.stride = 1 + KEY_INTS + columns;
  }

  static create(capacity: number, columns: number): SharedCounterTable {
    if (!Number.isInteger(Math.log2(capacity))) throw new RangeError('capacity must be a power of two');
    const ints = HEADER_INTS + capacity * (1 + KEY_INTS + columns);
    return new SharedCounterTable(new SharedArrayBuffer(ints * 4), capacity, columns);
  }

  /** The same table seen from another thread (pass buffer, capacity and columns in workerData). */
  static attach(buffer: SharedArrayBuffer, capacity: number, columns: number): SharedCounterTable {
    return new SharedCounterTable(buffer, capacity, columns);
  }

  /**
   * Adds one to `key` in `column` if the key's total is below `limit`. Returns the new total, or
   * -1 when the limit is reached, or -2 when the table is full (the caller decides what that means).
   */
  tryIncrement(key: CounterKey, column: number, limit: number): number {
    return this.locked(() => {
      const slot = this.find(key, true);
      if (slot < 0) return -2;
      const total = this.sum(slot);
      if (total >= limit) {
        if (total === 0) this.release(slot);
        return -1;
      }
      this.ints[slot + 1 + KEY_INTS + column]!++;
      return total + 1;
    });
  }

  /** Removes one from `key` in `column`; never goes below zero. Returns the new total. */
  decrement(key: CounterKey, column: number): number {
    return this.locked(() => {
      const slot = this.find(key, false);
      if (slot < 0) return 0;
      const index = slot + 1 + KEY_INTS + column;
      if (this.ints[index]! > 0) this.ints[index]!--;
      const total = this.sum(slot);
      if (total === 0) this.release(slot);
      return total;
    });
  }

  total(key: CounterKey): number {
    return this.locked(() => {
      const slot = this.find(key, false);
      return slot < 0 ? 0 : this.sum(slot);
    });
  }

  /** Forgets everything `column` held: its thread is gone. */
  clearColumn(column: number): void {
    this.locked(() => {
      for (let i = 0; i < this.capacity; i++) {
        const slot = HEADER_INTS + i * this.stride;
        if (this.ints[slot] !== USED) continue;
        this.ints[slot + 1 + KEY_INTS + column] = 0;
        if (this.sum(slot) === 0) this.release(slot);
      }
    });
  }

  /** Keys with a non-zero total. */
  get size(): number {
    return Atomics.load(this.ints, 1);
  }

  private sum(slot: number): number {
    let total = 0;
    for (let c = 0; c < this.columns; c++) total += this.ints[slot + 1 + KEY_INTS + c]!;
    return total;
  }

  private release(slot: number): void {
    this.ints[slot] = TOMBSTONE;
    this.ints[1]!--;
    this.ints[2]!++;
    if (this.ints[2]! > this.capacity / 4) this.rehash();
  }

  /** Linear probing; with `insert`, claims the first free slot on the way. Returns -1 if absent/full. */
  private find(key: CounterKey, insert: boolean): number {
    const mask = this.capacity - 1;
    let firstFree = -1;
    for (let probe = 0, i = hash(key) & mask; probe < this.capacity; probe++, i = (i + 1) & mask) {
      const slot = HEADER_INTS + i * this.stride;
      const state = this.ints[slot];
      if (state === USED && this.keyEquals(slot, key)) return slot;
      if (state === TOMBSTONE && firstFree < 0) firstFree = slot;
      if (state === EMPTY) {
        if (firstFree < 0) firstFree = slot;
        break;
      }
    }
    if (!insert || firstFree < 0) return -1;
    if (this.ints[firstFree] === TOMBSTONE) this.ints[2]!--;
    this.ints[firstFree] = USED;
    this.ints[1]!++;
    this.ints.set(key, firstFree + 1);
    this.ints.fill(0, firstFree + 1 + KEY_INTS, firstFree + this.stride);
    return firstFree;
  }

  private keyEquals(slot: number, key: CounterKey): boolean {
    for (let k = 0; k < KEY_INTS; k++) if (this.ints[slot + 1 + k] !== key[k]) return false;
    return true;
  }

  /** Drops tombstones so probe chains stay short; runs under the lock. */
  private rehash(): void {
    const live: Int32Array[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const slot = HEADER_INTS + i * this.stride;
      if (this.ints[slot] === USED) live.push(this.ints.slice(slot, slot + this.stride));
    }
    this.ints.fill(0, HEADER_INTS);
    this.ints[1] = 0;
    this.ints[2] = 0;
    for (const entry of live) {
      const slot = this.find(entry.subarray(1, 1 + KEY_INTS), true);
      this.ints.set(entry.subarray(1 + KEY_INTS), slot + 1 + KEY_INTS);
    }
  }

  private locked<T>(body: () => T): T {
    while (Atomics.compareExchange(this.ints, 0, 0, 1) !== 0) {
      // Critical sections are a few hundred instructions; yield the core briefly while contended.
      Atomics.wait(this.ints, 0, 1, 1);
    }
    try {
      return body();
    } finally {
      Atomics.store(this.ints, 0, 0);
      Atomics.notify(this.ints, 0, 1);
    }
  }
}

/** FNV-1a over the key's 16 bytes. */
function hash(key: CounterKey): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < KEY_INTS; k++) {
    let word = key[k]!;
    for (let b = 0; b < 4; b++) {
      h ^= word & 0xff;
      h = Math.imul(h, 0x01000193);
      word >>>= 8;
    }
  }
  return h >>> 0;
}

/** A 16-byte address (IPv4 as IPv4-mapped IPv6) as a counter key. */
export function counterKey(address16: Uint8Array): CounterKey {
  if (address16.length !== 16) throw new RangeError('counter keys are 16-byte addresses');
  return new Int32Array(address16.buffer.slice(address16.byteOffset, address16.byteOffset + 16));
}
