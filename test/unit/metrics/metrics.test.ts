import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/metrics/metrics.js';

const feedEvents = async (metrics: ReturnType<typeof createMetrics>) =>
  (await metrics.registry.getSingleMetric('ws_feed_events_total')!.get()).values.map((v) => [
    v.labels.source,
    v.value,
  ]);

describe('ws_feed_events_total', () => {
  it('counts the events applied per source, handed to the counter when scraped', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const simulator = metrics.feedEventCounter('simulator');
    expect(await feedEvents(metrics)).toEqual([['simulator', 0]]);
    for (let i = 0; i < 3; i++) simulator();
    expect(await feedEvents(metrics)).toEqual([['simulator', 3]]);
    simulator();
    // Each scrape adds what was counted since the last one, once.
    expect(await feedEvents(metrics)).toEqual([['simulator', 4]]);
    expect(await feedEvents(metrics)).toEqual([['simulator', 4]]);
    expect(await metrics.registry.metrics()).toContain('ws_feed_events_total{source="simulator"} 4');
  });
});
