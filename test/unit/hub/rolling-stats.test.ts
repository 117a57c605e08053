import { describe, expect, it } from 'vitest';
import { RollingStats } from '../../../src/hub/rolling-stats.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** 2024-03-01T00:00:00Z: a UTC day (and minute) boundary. */
const T0 = Date.UTC(2024, 2, 1);

describe('RollingStats with no trades', () => {
  it('reports the last price for open/high/low and zero volumes at the base scale', () => {
    const stats = new RollingStats(8);
    expect(stats.read(T0, '64000.00')).toEqual({
      open24h: '64000.00',
      high24h: '64000.00',
      low24h: '64000.00',
      volume24h: '0.00000000',
      volume30d: '0.00000000',
    });
    expect(new RollingStats(1).read(T0, '0.15').volume24h).toBe('0.0');
  });
});

describe('RollingStats 24 h window', () => {
  it('tracks open, high, low and volume within one minute', () => {
    const stats = new RollingStats(8);
    stats.record('100.00', '0.50000000', T0 + 1_000);
    stats.record('101.50', '0.25000000', T0 + 2_000);
    stats.record('99.99', '1.00000000', T0 + 3_000);
    stats.record('100.50', '0.00000001', T0 + 4_000);
    expect(stats.read(T0 + 5_000, '100.50')).toEqual({
      open24h: '100.00',
      high24h: '101.50',
      low24h: '99.99',
      volume24h: '1.75000001',
      volume30d: '1.75000001',
    });
  });

  it('compares prices numerically across different lengths', () => {
    const stats = new RollingStats(2);
    stats.record('99.00', '1.00', T0);
    stats.record('100.00', '1.00', T0 + MINUTE);
    stats.record('9.00', '1.00', T0 + 2 * MINUTE);
    const read = stats.read(T0 + 3 * MINUTE, '9.00');
    expect(read.high24h).toBe('100.00');
    expect(read.low24h).toBe('9.00');
    expect(read.open24h).toBe('99.00');
  });

  it('aggregates across minute buckets: open is the earliest trade', () => {
    const stats = new RollingStats(8);
    stats.record('200.00', '1.00000000', T0 + 10 * MINUTE);
    stats.record('250.00', '2.00000000', T0 + 2 * HOUR);
    stats.record('150.00', '3.00000000', T0 + 5 * HOUR);
    // Reading repeatedly within the same minute, with a trade in between, stays correct.
    expect(stats.read(T0 + 5 * HOUR + 1_000, '150.00')).toEqual({
      open24h: '200.00',
      high24h: '250.00',
      low24h: '150.00',
      volume24h: '6.00000000',
      volume30d: '6.00000000',
    });
    stats.record('300.00', '0.50000000', T0 + 5 * HOUR + 2_000);
    expect(stats.read(T0 + 5 * HOUR + 3_000, '300.00')).toEqual({
      open24h: '200.00',
      high24h: '300.00',
      low24h: '150.00',
      volume24h: '6.50000000',
      volume30d: '6.50000000',
    });
    // And once that minute has closed.
    expect(stats.read(T0 + 6 * HOUR, '300.00')).toEqual({
      open24h: '200.00',
      high24h: '300.00',
      low24h: '150.00',
      volume24h: '6.50000000',
      volume30d: '6.50000000',
    });
  });

  it('keeps a trade for the rest of its minute 24 h later and drops it at the next minute', () => {
    const stats = new RollingStats(8);
    const at = T0 + 30_000; // 00:00:30, in minute 0
    stats.record('100.00', '1.00000000', at);
    // 23:59:59.999 of the same day: the window still covers minute 0.
    expect(stats.read(T0 + DAY - 1, '100.00').volume24h).toBe('1.00000000');
    // 24:00:00: the window now starts at minute 1.
    const expired = stats.read(T0 + DAY, '123.45');
    expect(expired).toEqual({
      open24h: '123.45',
      high24h: '123.45',
      low24h: '123.45',
      volume24h: '0.00000000',
      volume30d: '1.00000000',
    });
  });

  it('expires trades one minute at a time, moving open/high/low with them', () => {
    const stats = new RollingStats(8);
    stats.record('500.00', '1.00000000', T0); // minute 0: the high and the open
    stats.record('100.00', '2.00000000', T0 + 10 * MINUTE); // minute 10: the low
    stats.record('300.00', '4.00000000', T0 + 20 * MINUTE);
    expect(stats.read(T0 + DAY - 1, '300.00')).toEqual({
      open24h: '500.00',
      high24h: '500.00',
      low24h: '100.00',
      volume24h: '7.00000000',
      volume30d: '7.00000000',
    });
    expect(stats.read(T0 + DAY, '300.00')).toEqual({
      open24h: '100.00',
      high24h: '300.00',
      low24h: '100.00',
      volume24h: '6.00000000',
      volume30d: '7.00000000',
    });
    expect(stats.read(T0 + DAY + 11 * MINUTE, '300.00')).toEqual({
      open24h: '300.00',
      high24h: '300.00',
      low24h: '300.00',
      volume24h: '4.00000000',
      volume30d: '7.00000000',
    });
    expect(stats.read(T0 + DAY + 21 * MINUTE, '300.00').volume24h).toBe('0.00000000');
  });

  it('takes the open from the earliest minute even when its slot comes later in the ring', () => {
    const stats = new RollingStats(8);
    // Minute 1430 of the day uses slot 1430; minute 1445 wraps round to slot 5.
    stats.record('120.00', '1.00000000', T0 + 1_430 * MINUTE);
    stats.record('80.00', '1.00000000', T0 + 1_445 * MINUTE);
    stats.record('90.00', '1.00000000', T0 + 1_446 * MINUTE);
    expect(stats.read(T0 + 1_450 * MINUTE, '90.00')).toEqual({
      open24h: '120.00',
      high24h: '120.00',
      low24h: '80.00',
      volume24h: '3.00000000',
      volume30d: '3.00000000',
    });
  });

  it('replaces a slot reused exactly 24 h later instead of adding to it', () => {
    const stats = new RollingStats(8);
    stats.record('100.00', '1.00000000', T0 + 5 * MINUTE);
    stats.record('200.00', '2.00000000', T0 + DAY + 5 * MINUTE);
    expect(stats.read(T0 + DAY + 5 * MINUTE + 1, '200.00')).toEqual({
      open24h: '200.00',
      high24h: '200.00',
      low24h: '200.00',
      volume24h: '2.00000000',
      volume30d: '3.00000000',
    });
  });

  it('forgets everything after a day without trades, then starts again', () => {
    const stats = new RollingStats(8);
    stats.record('100.00', '1.00000000', T0);
    expect(stats.read(T0 + 3 * DAY, '100.00').volume24h).toBe('0.00000000');
    stats.record('90.00', '0.10000000', T0 + 3 * DAY + 1);
    expect(stats.read(T0 + 3 * DAY + 2, '90.00')).toEqual({
      open24h: '90.00',
      high24h: '90.00',
      low24h: '90.00',
      volume24h: '0.10000000',
      volume30d: '1.10000000',
    });
  });

  // BUG: read() caches the aggregate of the closed minutes per minute. A trade recorded after that
  // read into an already-closed minute (the feed's event time trails the local clock, which the hub
  // reads with Date.now()) is left out until the next minute: the ticker of that very trade can show
  // a volume without it and a high_24h below its price.
  it('counts a trade recorded late into a minute that a read has already closed', () => {
    const stats = new RollingStats(8);
    stats.record('100.00', '1.00000000', T0 + 59_000);
    expect(stats.read(T0 + MINUTE, '100.00').volume24h).toBe('1.00000000');
    stats.record('105.00', '2.00000000', T0 + 59_500);
    expect(stats.read(T0 + MINUTE + 1, '105.00')).toEqual({
      open24h: '100.00',
      high24h: '105.00',
      low24h: '100.00',
      volume24h: '3.00000000',
      volume30d: '3.00000000',
    });
  });
});

describe('RollingStats 30 d volume', () => {
  it('sums the current UTC day and the 29 before it', () => {
    const stats = new RollingStats(8);
    stats.record('100.00', '1.00000000', T0 + HOUR); // day 0
    stats.record('100.00', '2.00000000', T0 + 5 * DAY + HOUR); // day 5
    stats.record('100.00', '4.00000000', T0 + 20 * DAY + HOUR); // day 20
    expect(stats.read(T0 + 20 * DAY + 2 * HOUR, '100.00')).toMatchObject({
      volume24h: '4.00000000',
      volume30d: '7.00000000',
    });
    // Last instant of day 29: day 0 is still in.
    expect(stats.read(T0 + 30 * DAY - 1, '100.00').volume30d).toBe('7.00000000');
    // Day 30: day 0 has left.
    expect(stats.read(T0 + 30 * DAY, '100.00').volume30d).toBe('6.00000000');
    expect(stats.read(T0 + 35 * DAY, '100.00').volume30d).toBe('4.00000000');
    expect(stats.read(T0 + 50 * DAY, '100.00').volume30d).toBe('0.00000000');
  });

  it('includes the 24 h volume, which is never larger', () => {
    const stats = new RollingStats(8);
    let t = T0;
    for (let i = 0; i < 200; i++) {
      t += 17 * MINUTE + 3_001;
      stats.record('100.00', '0.01000000', t);
      const read = stats.read(t, '100.00');
      expect(Number(read.volume24h)).toBeLessThanOrEqual(Number(read.volume30d));
    }
    // 200 trades over about 57 h: the 30 d window holds them all.
    expect(stats.read(t, '100.00').volume30d).toBe('2.00000000');
  });
});
