import { describe, expect, it } from 'vitest';
import { AcceptGuard } from '../../../src/limits/accept-guard.js';
import { descriptorBudget } from '../../../src/limits/descriptor-budget.js';
import { readOpenFilesLimit, readSomaxconn } from '../../../src/limits/open-descriptors.js';

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

describe('readSomaxconn', () => {
  it('reads net.core.somaxconn, undefined when unreadable or not a positive integer', () => {
    expect(readSomaxconn(() => '4096\n')).toBe(4096);
    expect(readSomaxconn(() => 'x')).toBeUndefined();
    expect(
      readSomaxconn(() => {
        throw new Error('ENOENT');
      }),
    ).toBeUndefined();
    expect(readSomaxconn()).toBeGreaterThan(0);
  });
});

describe('descriptorBudget', () => {
  it('reserves one full accept queue per listen socket and 64 more; reopens max(64, 2 %) below the pause point', () => {
    expect(descriptorBudget(20_000, 2)).toEqual({
      limit: 20_000,
      listeners: 2,
      acceptBurst: 513,
      reserve: 2 * 513 + 64,
      pauseAt: 18_910,
      watchAt: 18_910 - 4 * 1_090,
      resumeAt: 18_510,
      base: 48,
      maxConnections: 18_462,
    });
    // The main thread's one listen socket.
    expect(descriptorBudget(2_048, 0)).toMatchObject({
      listeners: 1,
      reserve: 577,
      pauseAt: 1_471,
      resumeAt: 1_407,
      maxConnections: 1_375,
    });
  });

  it("a somaxconn under uSockets' backlog of 512 shortens the queue; a larger one does not lengthen it", () => {
    expect(descriptorBudget(20_000, 4, 128).acceptBurst).toBe(129);
    expect(descriptorBudget(20_000, 4, 128).reserve).toBe(4 * 129 + 64);
    expect(descriptorBudget(20_000, 4, 4096).acceptBurst).toBe(513);
  });

  it('leaves no room for connections under a limit that does not hold the accept queues', () => {
    expect(descriptorBudget(512, 0).maxConnections).toBeLessThan(1);
    expect(descriptorBudget(2_048, 4).maxConnections).toBeLessThan(1);
  });
});

describe('AcceptGuard', () => {
  function harness() {
    const events: string[] = [];
    let open = 0;
    const guard = new AcceptGuard(
      { pauseAt: 100, resumeAt: 80, watchAt: 50 },
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

  it('reads every nearIntervalMs from the watch point while accepting, at the normal interval below it', async () => {
    const readings: number[] = [];
    let tenth: () => void = () => {};
    const tenReadings = new Promise<void>((resolve) => {
      tenth = resolve;
    });
    let open = 10;
    const guard = new AcceptGuard(
      { pauseAt: 100, resumeAt: 80, watchAt: 50 },
      {
        count: () => {
          readings.push(open);
          if (readings.length === 10) tenth();
          return open;
        },
        pauseListening: () => {},
        resumeListening: () => {},
        reserve: { fill: () => {}, release: () => {} },
        observed: () => {},
        changed: () => {},
      },
    );
    // Below the watch point the next reading is a minute away; at it, ten readings come within the
    // test's timeout only at the near interval.
    guard.start(60_000, 1);
    expect(readings).toEqual([10]);
    guard.stop();
    open = 60;
    guard.start(60_000, 1);
    await tenReadings;
    guard.stop();
    expect(readings.slice(1).every((n) => n === 60)).toBe(true);
  });
});
