import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backoff } from '../../../src/client/backoff.js';
import { classifyClose } from '../../../src/client/close-codes.js';

describe('Backoff (full jitter between a floor and a cap)', () => {
  it('the n-th failure waits between the floor and min(cap, floor × 2^n)', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 0.999999, noNaN: true }), { maxLength: 60 }), (draws) => {
        let i = 0;
        const backoff = new Backoff({ floorMs: 500, capMs: 20_000 }, () => draws[i++ % draws.length] ?? 0.5);
        for (let n = 1; n <= draws.length; n++) {
          const delay = backoff.next();
          expect(delay).toBeGreaterThanOrEqual(500);
          expect(delay).toBeLessThanOrEqual(Math.min(20_000, 500 * 2 ** n));
        }
      }),
    );
  });

  it('grows to the cap over repeated failures and starts again after reset()', () => {
    const top = new Backoff({ floorMs: 500, capMs: 20_000 }, () => 1);
    const ceilings = Array.from({ length: 8 }, () => top.next());
    expect(ceilings).toEqual([1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000]);
    expect(top.attempts).toBe(8);
    top.reset();
    expect(top.next()).toBe(1000);
    const bottom = new Backoff({ floorMs: 500, capMs: 20_000 }, () => 0);
    expect(Array.from({ length: 5 }, () => bottom.next())).toEqual([500, 500, 500, 500, 500]);
  });

  it('stays finite after a very long outage', () => {
    const backoff = new Backoff({ floorMs: 500, capMs: 20_000 }, () => 1);
    for (let n = 0; n < 5000; n++) backoff.next();
    expect(backoff.next()).toBe(20_000);
  });
});

describe('close-code classes (docs/protocol.md §9, §11.3)', () => {
  it.each([
    [1001, 'immediate'],
    [1012, 'immediate'],
    [4004, 'immediate'],
    [1006, 'backoff'],
    [1011, 'backoff'],
    [1013, 'backoff'],
    [4002, 'backoff'],
    [4003, 'backoff'],
    [1000, 'backoff'],
    [4005, 'backoff'],
    [4999, 'backoff'],
    [1009, 'stop'],
    [4001, 'stop'],
    [1008, 'stop'],
    [1002, 'stop'],
    [1003, 'stop'],
    [1007, 'stop'],
  ])('%i → %s', (code, kind) => {
    expect(classifyClose(code)).toBe(kind);
  });
});
