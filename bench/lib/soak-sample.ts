/** One row of the soak: what it reads from the gateway's /metrics and /proc every interval. */
import { readdirSync } from 'node:fs';
import type { PromMetrics, Timed } from './gateway-process.js';
import { processMemory } from './redis-upstream.js';
import { fmt } from './report.js';
import { sampleOf } from './scenario.js';

export interface SoakSample {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly fds: number;
  readonly activeConnections: number;
  /** Sockets this process holds open to the gateway when the sample was taken. */
  readonly soakConnections: number;
  readonly queueSize: number;
  readonly eventLoopLagP99Ms: number;
  readonly resyncs: number;
  readonly workerRestarts: number;
  readonly steadyReconnects: number;
  readonly feedStale: number;
}

function openDescriptors(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

export const ROW_HEADERS = [
  't s',
  'RSS MB',
  'heap MB',
  'fds',
  'conns',
  'soak conns',
  'queue',
  'ELD p99 ms',
  'resyncs',
  'worker restarts',
  'reconnects',
  'stale',
];

export function row(sample: Timed<SoakSample>): string[] {
  const s = sample.value;
  return [
    (sample.atMs / 1000).toFixed(0),
    fmt.mb(s.rssBytes),
    fmt.mb(s.heapUsedBytes),
    fmt.int(s.fds),
    fmt.int(s.activeConnections),
    fmt.int(s.soakConnections),
    fmt.int(s.queueSize),
    fmt.ms(s.eventLoopLagP99Ms),
    fmt.int(s.resyncs),
    fmt.int(s.workerRestarts),
    fmt.int(s.steadyReconnects),
    fmt.int(s.feedStale),
  ];
}

/** What the soak itself knows at the moment of a sample. */
export interface SoakCounts {
  readonly soakConnections: number;
  readonly steadyReconnects: number;
}

/** RSS and descriptors from /proc/<pid> (Linux; NaN elsewhere), the rest from the scrape. */
export function soakSampleOf(metrics: PromMetrics, pid: number, counts: SoakCounts): SoakSample {
  const base = sampleOf(metrics);
  return {
    rssBytes: processMemory(pid).rssBytes,
    // prom-client's heap figures are the main thread's (each worker thread has a heap of its own).
    heapUsedBytes: metrics.value('nodejs_heap_size_used_bytes') ?? Number.NaN,
    fds: openDescriptors(pid),
    activeConnections: base.activeConnections,
    queueSize: base.queueSize,
    eventLoopLagP99Ms: base.eventLoopLagP99Ms,
    resyncs: metrics.sum('ws_feed_resyncs_total'),
    workerRestarts: metrics.sum('ws_worker_restarts_total'),
    feedStale: metrics.value('ws_feed_stale') ?? Number.NaN,
    ...counts,
  };
}
