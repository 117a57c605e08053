import { describe, expect, it } from 'vitest';
import { counterKey, SharedCounterTable } from '../../../src/limits/shared-counters.js';

const key = (n: number) =>
  counterKey(Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? n & 0xff : i === 14 ? n >> 8 : 0)));

describe('SharedCounterTable', () => {
  it('counts per key across columns and enforces a limit atomically', () => {
    const table = SharedCounterTable.create(16, 3);
    expect(table.tryIncrement(key(1), 0, 2)).toBe(1);
    expect(table.tryIncrement(key(1), 2, 2)).toBe(2);
    expect(table.tryIncrement(key(1), 1, 2)).toBe(-1);
    expect(table.tryIncrement(key(2), 1, 2)).toBe(1);
    expect(table.total(key(1))).toBe(2);
    expect(table.size).toBe(2);
  });

  it('never goes below zero and forgets keys that reach zero', () => {
    const table = SharedCounterTable.create(16, 2);
    table.tryIncrement(key(7), 1, 10);
    expect(table.decrement(key(7), 1)).toBe(0);
    expect(table.decrement(key(7), 1)).toBe(0);
    expect(table.decrement(key(7), 0)).toBe(0);
    expect(table.size).toBe(0);
    expect(table.total(key(7))).toBe(0);
  });

  it('clearing a column removes exactly what that thread held', () => {
    const table = SharedCounterTable.create(64, 3);
    for (let i = 0; i < 10; i++) {
      table.tryIncrement(key(i), 1, 100);
      table.tryIncrement(key(i), 2, 100);
    }
    table.tryIncrement(key(99), 1, 100);
    table.clearColumn(1);
    for (let i = 0; i < 10; i++) expect(table.total(key(i))).toBe(1);
    expect(table.total(key(99))).toBe(0);
    expect(table.size).toBe(10);
  });

  it('reports a full table instead of overwriting, and stays usable through many open/close cycles', () => {
    const table = SharedCounterTable.create(8, 1);
    for (let i = 0; i < 8; i++) expect(table.tryIncrement(key(i), 0, 5)).toBe(1);
    expect(table.tryIncrement(key(100), 0, 5)).toBe(-2);
    for (let i = 0; i < 8; i++) table.decrement(key(i), 0);
    // Tombstones are recycled and rehashed away: thousands of distinct keys come and go.
    for (let round = 0; round < 5_000; round++) {
      expect(table.tryIncrement(key(round), 0, 5)).toBe(1);
      expect(table.decrement(key(round), 0)).toBe(0);
    }
    expect(table.size).toBe(0);
  });

  it('is shared: a view attached to the same buffer sees the same counts', () => {
    const table = SharedCounterTable.create(16, 2);
    const other = SharedCounterTable.attach(table.buffer, 16, 2);
    table.tryIncrement(key(3), 0, 10);
    other.tryIncrement(key(3), 1, 10);
    expect(table.total(key(3))).toBe(2);
  });
});
