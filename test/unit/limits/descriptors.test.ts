import { describe, expect, it } from 'vitest';
import { AcceptGuard } from '../../../src/limits/accept-guard.js';
import { descriptorBudget } from '../../../src/limits/descriptor-budget.js';
import { readOpenFilesLimit } from '../../../src/limits/open-descriptors.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('readOpenFilesLimit', () => {
  it('reads the soft limit from /proc/self/limits', () => {
    expect(readOpenFilesLimit(() => LIMITS)).toBe(1024);
  });

  it('is undefined when unlimited, absent or unreadable', () => {
    expect(readOpenFilesLimit(() => LIMITS.replace('1024 ', 'unlimited '))).toBeUndefined();
    expect(readOpenFilesLimit(() => 'Max cpu time unlimited unlimited seconds\n')).toBeUndefined();
    expect(
      readOpenFilesLimit(() => {
        throw new Error('ENOENT');
      }),
    ).toBeUndefined();
  });

  it('reads this process', () => {
    expect(readOpenFilesLimit()).toBeGreaterThan(0);
  });
});

describe('descriptorBudget', () => {
  it('keeps a reserve of 2 % (at least 64), pauses at limit − reserve, resumes below limit − 2 × reserve', () => {
    expect(descriptorBudget(20_000, 2)).toEqual({
      limit: 20_000,
      reserve: 400,
      pauseAt: 19_600,
      resumeAt: 19_200,
      base: 48,
      maxConnections: 19_152,
    });
    expect(descriptorBudget(512, 0)).toMatchObject({
      reserve: 64,
      pauseAt: 448,
      resumeAt: 384,
      maxConnections: 352,
    });
  });

  it('leaves no room for connections under a tiny limit', () => {
    expect(descriptorBudget(128, 4).maxConnections).toBeLessThan(1);
  });
});

describe('AcceptGuard', () => {
  function harness() {
    const events: string[] = [];
    let open = 0;
    const guard = new AcceptGuard(
      { pauseAt: 100, resumeAt: 80 },
      {
        count: () => open,
        pauseListening: () => events.push('pause'),
        resumeListening: () => events.push('resume'),
        reserve: { fill: () => events.push('fill'), release: () => events.push('release') },
        observed: () => {},
        changed: (paused, count) => events.push(`${paused ? 'paused' : 'resumed'}@${count}`),
      },
    );
    return { guard, events, set: (n: number) => (open = n) };
  }

  it('pauses at the high mark and gives the reserve back; resumes below the low mark after refilling it', () => {
    const { guard, events, set } = harness();
    set(99);
    guard.check();
    expect(events).toEqual([]);
    set(100);
    guard.check();
    expect(events).toEqual(['pause', 'release', 'paused@100']);
    expect(guard.isPaused).toBe(true);
    // Between the marks: no flapping either way.
    for (const n of [120, 90, 80]) {
      set(n);
      guard.check();
    }
    expect(events).toHaveLength(3);
    set(79);
    guard.check();
    expect(events.slice(3)).toEqual(['fill', 'resume', 'resumed@79']);
    expect(guard.isPaused).toBe(false);
    set(95);
    guard.check();
    expect(events).toHaveLength(6);
  });
});
