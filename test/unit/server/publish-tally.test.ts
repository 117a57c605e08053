import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { epochMs } from '../../../src/market/time.js';
import type { Channel } from '../../../src/market/types.js';
import { PublishTally } from '../../../src/server/publish-tally.js';

function recordingTally() {
  const sent = new Map<Channel, number[]>();
  const observed = new Map<Channel, number[]>();
  const tally = new PublishTally((channel) => ({
    sent: { inc: (n) => sent.set(channel, [...(sent.get(channel) ?? []), n]) },
    latency: { observe: (s) => observed.set(channel, [...(observed.get(channel) ?? []), s]) },
  }));
  return { tally, sent, observed };
}

describe('PublishTally', () => {
  it("hands a turn's publishes to the metrics once, after the turn: one increment per channel, one observation per message", async () => {
    const { tally, sent, observed } = recordingTally();
    const receivedAt = epochMs() - 5;
    tally.published('level2', 250, receivedAt);
    tally.published('level2', 250, receivedAt);
    tally.published('matches', 3, receivedAt);
    // Nothing during the turn that published.
    expect(sent.size).toBe(0);
    expect(observed.size).toBe(0);

    await nextTurn();
    expect(Object.fromEntries(sent)).toEqual({ level2: [500], matches: [3] });
    expect(observed.get('level2')).toHaveLength(2);
    expect(observed.get('matches')).toHaveLength(1);
    for (const seconds of [...observed.values()].flat()) {
      expect(seconds).toBeGreaterThanOrEqual(0.005);
      expect(seconds).toBeLessThan(1);
    }
  });

  it('starts each turn from zero and schedules one flush per turn', async () => {
    const { tally, sent, observed } = recordingTally();
    tally.published('ticker', 2, epochMs());
    await nextTurn();
    tally.published('ticker', 7, epochMs());
    await nextTurn();
    await nextTurn();
    expect(sent.get('ticker')).toEqual([2, 7]);
    expect(observed.get('ticker')).toHaveLength(2);
  });
});
