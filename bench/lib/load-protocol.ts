import type { HistogramJson } from './histogram.js';

/**
 * The IPC protocol between a benchmark (parent) and a load-client process (child). Timeline:
 *   parent forks the child with a LoadClientConfig as its first message ('start');
 *   child opens and subscribes its fast connections, then answers 'ready';
 *   parent sends 'measure' when its warm-up is over: the child resets its window counters and
 *     opens its stalled connections, which subscribe and never read;
 *   the window ends by itself after durationMs (a saturated child may read parent messages late):
 *     the child stops reading and sends 'report' (the window's figures);
 *   parent sends 'stop': the child closes its connections and exits (a window still open ends
 *     first, and its 'report' goes out before the exit).
 */

export interface LoadClientConfig {
  /** A name for logs and reports. */
  readonly label: string;
  /** ws://host:port/ of the gateway. */
  readonly url: string;
  /** Connections this process opens, stalled ones included. */
  readonly connections: number;
  /**
   * How many of them are stalled: opened when the window starts, they subscribe and at once pause
   * their TCP socket (they never read; the gateway's buffers for them fill).
   */
  readonly stalled: number;
  readonly channels: readonly string[];
  readonly productIds: readonly string[];
  /** Connections opened at a time while connecting (so the listen backlog is never overrun). */
  readonly connectConcurrency: number;
  /** Give up on 'ready' after this long. */
  readonly readyTimeoutMs: number;
}

export type ParentToChild =
  | { readonly kind: 'start'; readonly config: LoadClientConfig }
  | { readonly kind: 'measure'; readonly durationMs: number }
  | { readonly kind: 'stop' };

export type ChildToParent =
  | { readonly kind: 'ready'; readonly connected: number; readonly failed: number; readonly error?: string }
  | { readonly kind: 'report'; readonly report: LoadReport };

export type ConnectionGroup = 'fast' | 'stalled';

/** What one group of connections (fast or stalled) saw during the measurement window. */
export interface GroupReport {
  readonly connections: number;
  /** Every message received, any type. */
  readonly messages: number;
  readonly bytes: number;
  /** Messages by their `type` field. */
  readonly byType: Readonly<Record<string, number>>;
  /** level2: l2updates whose sequence skipped at least one (per connection and product). */
  readonly gaps: number;
  /** level2: sequences skipped in total by those gaps. */
  readonly missingSequences: number;
  /** level2: l2updates at or below the last sequence seen (duplicates, reordering). */
  readonly staleUpdates: number;
  /** level2: l2updates for a product before its first snapshot on that connection. */
  readonly updatesBeforeSnapshot: number;
  /** Snapshots after a connection's first one per product (the server resynchronised it). */
  readonly resnapshots: number;
  /** now - Date.parse(message.time) of l2update, match and ticker. */
  readonly latency: HistogramJson;
  readonly latencyByType: Readonly<Record<string, HistogramJson>>;
  /** The same latencies by second of the window (index 0: its first second), to see them change over time. */
  readonly latencyBySecond: readonly HistogramJson[];
  /** Connections closed since start, by close code (lifetime, not just the window). */
  readonly closes: Readonly<Record<string, number>>;
  /** Error messages received from the gateway, by reason code (lifetime). */
  readonly errors: Readonly<Record<string, number>>;
}

export interface LoadReport {
  readonly label: string;
  readonly windowMs: number;
  /** Event-loop utilisation of this process over the window (0-1); near 1 it cannot keep up. */
  readonly eventLoopUtilization: number;
  /** CPU time of this process over the window, in CPU-seconds per second. */
  readonly cpuCores: number;
  readonly groups: Readonly<Record<ConnectionGroup, GroupReport>>;
}
