import type { Channel } from '../market/types.js';
import type { HttpQuery, HttpReply } from '../server/http-routes.js';
import type { GateDecision, TransportOptions } from '../server/transport.js';

/** Messages between the main thread (feed, hub) and the worker threads (uWS apps). */

export interface WorkerStartData {
  readonly index: number;
  /** Test hook, reachable only in-process: fail this worker's start instead of listening. */
  readonly startupFault?: WorkerStartupFault;
  readonly transport: TransportOptions;
  readonly productIds: readonly string[];
  readonly logLevel: string;
  /** Int32Array over it: [i] = worker i's liveness tick, bumped by the worker on a timer. */
  readonly liveness: SharedArrayBuffer;
  /** Int32Array over it: [i] = messages handed to worker i and not yet published by it. */
  readonly inflight: SharedArrayBuffer;
  /** Int32Array over it, indexed by CONTROL: process health and the count of closed workers. */
  readonly control: SharedArrayBuffer;
  /** The admission SharedCounterTable (worker i uses column i + 1). */
  readonly admission: {
    readonly buffer: SharedArrayBuffer;
    readonly capacity: number;
    readonly columns: number;
  };
}

export type MainToWorker =
  | { readonly kind: 'listen'; readonly port: number }
  /** One turn's publications, framed by encodeBatch. */
  | { readonly kind: 'batch'; readonly data: string; readonly count: number }
  /**
   * A new subscriber's first messages. From this answer on, the main thread publishes the topic to
   * the worker (the hub builds its messages) until the worker gives back this grant.
   */
  | {
      readonly kind: 'initial';
      readonly id: number;
      readonly messages: readonly string[];
      readonly grant: number;
    }
  | { readonly kind: 'reply'; readonly id: number; readonly reply: HttpReply }
  | { readonly kind: 'collect'; readonly id: number }
  | { readonly kind: 'admitted'; readonly id: number; readonly decision: GateDecision }
  /** The accept guard: close the listen socket near the open-files limit, reopen it below it. */
  | { readonly kind: 'pause-listening' }
  | { readonly kind: 'resume-listening' }
  | { readonly kind: 'drain'; readonly spreadMs: number }
  | { readonly kind: 'close' }
  /** Test hook, reachable only in-process: make the worker fail, or spin its event loop forever. */
  | { readonly kind: 'fault'; readonly fault: WorkerFault };

export type WorkerFault = 'crash' | 'hang';

/** 'exit': an uncaught exception before listening; 'listen-failed': the listen is refused. */
export type WorkerStartupFault = 'exit' | 'listen-failed';

export type WorkerToMain =
  | { readonly kind: 'listening'; readonly port: number }
  | { readonly kind: 'listen-failed'; readonly error: string }
  | { readonly kind: 'initial'; readonly id: number; readonly channel: Channel; readonly productId: string }
  | { readonly kind: 'http'; readonly id: number; readonly query: HttpQuery }
  | { readonly kind: 'metrics'; readonly id: number }
  | { readonly kind: 'admit'; readonly id: number; readonly clientIp: string }
  | { readonly kind: 'release'; readonly clientIp: string }
  /**
   * Nobody on this worker is on the topic any more, as of the latest grant it had received for it;
   * ignored if the main thread has granted the topic again since (an answer still on its way).
   */
  | { readonly kind: 'topic-unused'; readonly topic: string; readonly grant: number }
  | { readonly kind: 'collected'; readonly id: number; readonly metrics: unknown }
  /** The worker hit an uncaught error and is ending: why, for the main thread to report. */
  | { readonly kind: 'failed'; readonly error: string };

/**
 * Symbol.for key of the function a worker registers on globalThis to close its uWS app; the main
 * thread calls it through the inspector when the worker's loop is stuck (see stuck-worker.ts).
 */
export const CLOSE_STUCK_APP = 'matchbook.closeStuckApp';

export const CONTROL = {
  /** 1 while every worker is live; drives /healthz on every thread. */
  healthy: 0,
  /** Workers that have closed their uWS app after a 'close' (lets the main thread wait synchronously). */
  closed: 1,
  length: 2,
} as const;

/*
 * A batch is one string: topic, channel, receivedAt and payload of each publication, separated by
 * NUL. JSON.stringify never emits a raw NUL and topics are ours, so the framing is unambiguous,
 * and the string is copied once per worker by postMessage. bench/handoff.ts measured it against an
 * ArrayBuffer batch and a SharedArrayBuffer ring: see the README.
 */
const SEPARATOR = '\u0000';

export class BatchEncoder {
  private parts: string[] = [];
  private entries = 0;

  add(topic: string, channel: Channel, payload: string, receivedAtEpochMs: number): void {
    this.parts.push(topic, channel, String(receivedAtEpochMs), payload);
    this.entries++;
  }

  get size(): number {
    return this.entries;
  }

  /** Returns the batch and starts a new one. */
  take(): { data: string; count: number } {
    const batch = { data: this.parts.join(SEPARATOR), count: this.entries };
    this.parts = [];
    this.entries = 0;
    return batch;
  }
}

export function decodeBatch(
  data: string,
  publish: (topic: string, channel: Channel, payload: string, receivedAtEpochMs: number) => void,
): void {
  const parts = data.split(SEPARATOR);
  for (let i = 0; i + 3 < parts.length; i += 4) {
    publish(parts[i]!, parts[i + 1] as Channel, parts[i + 3]!, Number(parts[i + 2]));
  }
}
