/**
 * The IPC protocol between the fan-out benchmark (parent) and a load-client process (child):
 *   parent forks the child and sends 'start' with its ClientConfig;
 *   'connect' opens `count` connections, `concurrency` at a time, from `startAtEpochMs` on (every
 *     client gets the same instant, for the connection storm); each sends the subscribe request and
 *     is ready once acknowledged (and, from the gateway, once it has every product's snapshot); the
 *     child answers 'connected' with when each stage finished;
 *   'measure' opens a window [fromEpochMs, toEpochMs) of wall-clock time, announced ahead of time so
 *     every client and the server agree on it; the child answers 'report' at toEpochMs + graceMs;
 *     'measure' may be sent again for another window on the same connections;
 *   'stop' closes every connection and ends the process.
 */

export type PeerKind = 'uws' | 'ws' | 'socketio' | 'gateway';

export interface ClientConfig {
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** Path and query of the upgrade request. */
  readonly path: string;
  /** Engine.IO / Socket.IO framing (open packet, namespace connect, 42[...] events, pings). */
  readonly socketIo: boolean;
  /** level2 from the gateway: a snapshot per product before its updates (sets the sequence). */
  readonly expectSnapshot: boolean;
  /** Every topic of the run; reports index per-topic figures by position in this list. */
  readonly topics: readonly string[];
  /** The topics each connection subscribes to. */
  readonly subscribe: readonly string[];
  /** Source address for this process's connections (undefined: the kernel's choice). */
  readonly localAddress?: string | undefined;
}

export interface ConnectCommand {
  readonly count: number;
  readonly concurrency: number;
  readonly startAtEpochMs: number;
  readonly readyTimeoutMs: number;
}

export interface MeasureCommand {
  readonly fromEpochMs: number;
  readonly toEpochMs: number;
  /** How long after the window messages scheduled in it are still counted. */
  readonly graceMs: number;
  /** A message delivered within this long of its scheduled time is on schedule. */
  readonly onScheduleMs: number;
}

export type ParentToClient =
  | { readonly kind: 'start'; readonly config: ClientConfig }
  | ({ readonly kind: 'connect' } & ConnectCommand)
  | ({ readonly kind: 'measure' } & MeasureCommand)
  | { readonly kind: 'stop' };

export interface ConnectReport {
  readonly requested: number;
  /** Handshakes completed (101, and for Socket.IO its open packet). */
  readonly opened: number;
  /** Subscribed: acknowledged, with every snapshot expected. */
  readonly ready: number;
  readonly failed: number;
  readonly startedAtEpochMs: number;
  readonly lastOpenedAtEpochMs: number;
  readonly lastReadyAtEpochMs: number;
  /** Failures and closes by reason. */
  readonly errors: Readonly<Record<string, number>>;
  /** This process's event-loop utilisation and CPU (cores) while connecting. */
  readonly eventLoopUtilization: number;
  readonly cpuCores: number;
}

export interface StreamReport {
  readonly label: string;
  readonly windowMs: number;
  /** Event-loop utilisation of this process over the window (0-1); near 1 it cannot keep up. */
  readonly eventLoopUtilization: number;
  /** CPU time of this process over the window, in CPU-seconds per second. */
  readonly cpuCores: number;
  readonly connections: number;
  /** level2 updates received during the window (wall clock). */
  readonly delivered: number;
  readonly bytes: number;
  /** Latency (µs) of the updates received during the window: receipt − scheduled `time`. HDR, base64. */
  readonly latency: string;
  /** Updates whose scheduled time fell in the window, received up to its end + grace. */
  readonly scheduledInWindow: number;
  /** Those of them delivered within onScheduleMs. */
  readonly onSchedule: number;
  /** Per connection and topic: updates whose sequence skipped at least one (received in the window). */
  readonly gaps: number;
  readonly missingSequences: number;
  /** Updates at or below the last sequence seen on their connection. */
  readonly staleUpdates: number;
  readonly updatesBeforeSnapshot: number;
  /** Snapshots after a connection's first one for a product (the gateway resynchronised it). */
  readonly resnapshots: number;
  /** Per topic (index of ClientConfig.topics): highest sequence seen scheduled before the window. */
  readonly sequenceAtFrom: readonly number[];
  /** Per topic: highest sequence seen scheduled before the window's end. */
  readonly sequenceAtTo: readonly number[];
  /** Per topic: connections of this process subscribed to it and still open at the end. */
  readonly subscribers: readonly number[];
  /** Connections closed since the start, by reason (lifetime). */
  readonly closes: Readonly<Record<string, number>>;
  /** Error messages from the server, by code (lifetime). */
  readonly errors: Readonly<Record<string, number>>;
}

export type ClientToParent =
  | { readonly kind: 'connected'; readonly report: ConnectReport }
  | { readonly kind: 'report'; readonly report: StreamReport };
