import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Throttle } from '../../../src/hub/throttle.js';

/** A throttle of string lists: merging concatenates, so a test sees exactly what was merged. */
function recording(intervalMs: number) {
  const emitted: Array<{ value: string[]; at: number }> = [];
  const merges: Array<[string[] | undefined, string[]]> = [];
  let conflated = 0;
  const throttle = new Throttle<string[]>(
    intervalMs,
    (pending, next) => {
      merges.push([pending && [...pending], next]);
      return pending ? [...pending, ...next] : next;
    },
    (value) => emitted.push({ value, at: performance.now() }),
    () => conflated++,
  );
  return {
    throttle,
    emitted,
    merges,
    values: () => emitted.map((e) => e.value),
    times: () => emitted.map((e) => e.at),
    conflated: () => conflated,
  };
}

beforeEach(() => {
  // Throttle reads performance.now() and waits on setTimeout: both follow the fake clock.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('Throttle', () => {
  it('with interval 0 passes every value straight on, without merging or timers', () => {
    const t = recording(0);
    t.throttle.offer(['a']);
    t.throttle.offer(['b']);
    t.throttle.offer(['c']);
    expect(t.values()).toEqual([['a'], ['b'], ['c']]);
    expect(t.merges).toEqual([]);
    expect(t.conflated()).toBe(0);
    expect(t.throttle.hasPending).toBe(false);
    expect(t.throttle.lastEmitted).toEqual(['c']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sends the first value at once (leading edge), and again after a quiet interval', () => {
    const t = recording(100);
    t.throttle.offer(['a']);
    expect(t.values()).toEqual([['a']]);
    expect(t.throttle.hasPending).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100);
    t.throttle.offer(['b']);
    expect(t.values()).toEqual([['a'], ['b']]);
    vi.advanceTimersByTime(250);
    t.throttle.offer(['c']);
    expect(t.values()).toEqual([['a'], ['b'], ['c']]);
    expect(t.times()).toEqual([0, 100, 350]);
    expect(t.merges).toEqual([]);
    expect(t.conflated()).toBe(0);
  });

  it('holds a value arriving within the interval and sends it when the interval ends', () => {
    const t = recording(100);
    t.throttle.offer(['a']);
    vi.advanceTimersByTime(60);
    t.throttle.offer(['b']);
    expect(t.throttle.hasPending).toBe(true);
    expect(t.values()).toEqual([['a']]);
    // The interval runs from the last emission (t=0), not from the held value's arrival.
    vi.advanceTimersByTime(39);
    expect(t.values()).toEqual([['a']]);
    vi.advanceTimersByTime(1);
    expect(t.values()).toEqual([['a'], ['b']]);
    expect(t.times()).toEqual([0, 100]);
    expect(t.throttle.hasPending).toBe(false);
    // One pending value is not a merge into another: nothing conflated.
    expect(t.merges).toEqual([[undefined, ['b']]]);
    expect(t.conflated()).toBe(0);
  });

  it('merges every value of an interval into one pending value, sent once at its end', () => {
    const t = recording(100);
    t.throttle.offer(['a']);
    vi.advanceTimersByTime(10);
    t.throttle.offer(['b']);
    vi.advanceTimersByTime(10);
    t.throttle.offer(['c']);
    t.throttle.offer(['d']);
    expect(t.values()).toEqual([['a']]);
    expect(t.conflated()).toBe(2);
    expect(t.merges).toEqual([
      [undefined, ['b']],
      [['b'], ['c']],
      [['b', 'c'], ['d']],
    ]);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(80);
    expect(t.values()).toEqual([['a'], ['b', 'c', 'd']]);
    // A single trailing emission: nothing more without new values.
    vi.advanceTimersByTime(1_000);
    expect(t.values()).toEqual([['a'], ['b', 'c', 'd']]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps sending at most once per interval under a steady stream', () => {
    const t = recording(100);
    for (let i = 0; i < 100; i++) {
      t.throttle.offer([String(i)]);
      vi.advanceTimersByTime(7);
    }
    vi.advanceTimersByTime(100);
    const times = t.times();
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(100);
    // Every value went out exactly once, in order.
    expect(t.values().flat()).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
    // Each message beyond the first value of a pending one was a merge.
    expect(t.conflated()).toBe(100 - t.emitted.length);
  });

  it('after a trailing emission, a value within the interval waits for the next one', () => {
    const t = recording(100);
    t.throttle.offer(['a']);
    vi.advanceTimersByTime(50);
    t.throttle.offer(['b']);
    vi.advanceTimersByTime(50);
    expect(t.times()).toEqual([0, 100]);
    vi.advanceTimersByTime(30);
    t.throttle.offer(['c']);
    vi.advanceTimersByTime(69);
    expect(t.values()).toEqual([['a'], ['b']]);
    vi.advanceTimersByTime(1);
    expect(t.values()).toEqual([['a'], ['b'], ['c']]);
    expect(t.times()).toEqual([0, 100, 200]);
  });

  it('discard drops the pending value and its timer; the interval still holds', () => {
    const t = recording(100);
    t.throttle.offer(['a']);
    vi.advanceTimersByTime(10);
    t.throttle.offer(['b']);
    t.throttle.offer(['c']);
    t.throttle.discard();
    expect(t.throttle.hasPending).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(t.values()).toEqual([['a']]);
    expect(t.throttle.lastEmitted).toEqual(['a']);
    // Discarding with nothing pending is harmless.
    t.throttle.discard();
    t.throttle.offer(['d']);
    expect(t.values()).toEqual([['a'], ['d']]);
  });

  it('after discard, a value within the interval starts a fresh pending value', () => {
    const t = recording(100);
    t.throttle.offer(['a']);
    vi.advanceTimersByTime(10);
    t.throttle.offer(['b']);
    t.throttle.discard();
    vi.advanceTimersByTime(10);
    t.throttle.offer(['c']);
    // A fresh pending value, not merged with the discarded one.
    expect(t.merges.at(-1)).toEqual([undefined, ['c']]);
    vi.advanceTimersByTime(80);
    expect(t.values()).toEqual([['a'], ['c']]);
    expect(t.times()).toEqual([0, 100]);
  });

  it('lastEmitted is the last value sent, never the pending one', () => {
    const t = recording(100);
    expect(t.throttle.lastEmitted).toBeUndefined();
    t.throttle.offer(['a']);
    expect(t.throttle.lastEmitted).toEqual(['a']);
    vi.advanceTimersByTime(10);
    t.throttle.offer(['b']);
    t.throttle.offer(['c']);
    expect(t.throttle.lastEmitted).toEqual(['a']);
    vi.advanceTimersByTime(90);
    expect(t.throttle.lastEmitted).toEqual(['b', 'c']);
    expect(t.throttle.lastEmitted).toBe(t.emitted.at(-1)?.value);
  });

  it('counts one conflation per value merged into an existing pending value', () => {
    const t = recording(100);
    t.throttle.offer(['a']); // sent
    expect(t.conflated()).toBe(0);
    t.throttle.offer(['b']); // pending
    expect(t.conflated()).toBe(0);
    t.throttle.offer(['c']); // merged
    t.throttle.offer(['d']); // merged
    expect(t.conflated()).toBe(2);
    vi.advanceTimersByTime(100);
    t.throttle.offer(['e']); // pending again (within the interval of the trailing emission)
    t.throttle.offer(['f']); // merged
    expect(t.conflated()).toBe(3);
    t.throttle.discard();
    t.throttle.offer(['g']); // pending after a discard: not a merge
    expect(t.conflated()).toBe(3);
    vi.advanceTimersByTime(100);
    expect(t.values()).toEqual([['a'], ['b', 'c', 'd'], ['g']]);
    expect(t.conflated()).toBe(3);
  });
});
