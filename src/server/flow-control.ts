import type { Channel } from '../market/types.js';

/**
 * Per-connection flow control. uWS publishes each message once to every subscriber of a topic,
 * but silently skips a subscriber whose buffer is over maxBackpressure. So a connection whose
 * buffer passes the high-water mark is taken off its topics before that can happen, and served
 * from a bounded, conflating queue of its own:
 *   - level2/level2_batch: nothing queued, only "send a fresh snapshot on resume";
 *   - ticker/ticker_batch: the latest ticker per product;
 *   - matches, heartbeat, status: queued in order, up to a bound.
 * Below a quarter of the high-water mark it is flushed and put back on its topics (a fresh snapshot
 * for level2). Over the high-water mark for too long, or with its queue full, it is disconnected
 * with ErrSlowConsume. Nothing is dropped silently: a message a client does not get is superseded
 * by one it does get, or the connection is closed. Only slow connections cost JS per message.
 */

export interface FlowControlOptions {
  readonly highWaterBytes: number;
  readonly slowQueueMaxMessages: number;
  readonly slowConsumerTimeoutMs: number;
}

/** What flow control needs from one connection; the transport implements it over a uWS socket. */
export interface FlowConnection {
  bufferedAmount(): number;
  /** The uWS topics the connection is subscribed to now. */
  topics(): readonly string[];
  unsubscribe(topic: string): void;
  subscribe(topic: string): void;
  /** Sends several messages in one corked write. */
  sendAll(payloads: readonly string[]): void;
  /** Re-attaches a level2 topic: a fresh snapshot, then live updates. */
  resnapshot(topic: string): void;
  /** Sends ErrSlowConsume and closes with the slow-consumer close code. */
  disconnectSlow(reason: SlowDisconnectReason): void;
}

/** Why flow control cut a connection off (uWS's own cut at maxBackpressure is counted by the transport). */
export type SlowDisconnectReason = 'timeout' | 'queue_overflow';

export interface FlowObserver {
  slowConsumersChanged(delta: number): void;
  conflated(channel: Channel): void;
  disconnected(reason: SlowDisconnectReason): void;
}

interface SlowState {
  /** Topics taken off uWS for this connection, with the channel each carries. */
  readonly captured: Map<string, Channel>;
  readonly queue: Array<{ readonly topic: string; readonly payload: string }>;
  readonly latest: Map<string, string>;
  readonly resnapshot: Set<string>;
  /** True while the connection is over the high-water mark (not just finishing a resume). */
  slow: boolean;
}

const isBook = (channel: Channel) => channel === 'level2' || channel === 'level2_batch';
const isTicker = (channel: Channel) => channel === 'ticker' || channel === 'ticker_batch';

export class FlowControl<C extends FlowConnection> {
  private readonly states = new Map<C, SlowState>();
  private readonly byTopic = new Map<string, Set<C>>();
  /** When each connection went over the high-water mark (and has stayed over since). */
  private readonly overSince = new Map<C, number>();
  private readonly lowWaterBytes: number;

  constructor(
    private readonly options: FlowControlOptions,
    private readonly observer: FlowObserver,
  ) {
    this.lowWaterBytes = Math.floor(options.highWaterBytes / 4);
  }

  /** True while the connection is served from its own queue instead of its topics. */
  isSlow(connection: C): boolean {
    return this.states.get(connection)?.slow === true;
  }

  /** Connections captured on a topic: the only per-subscriber work, and only for slow ones. */
  capturing(topic: string): ReadonlySet<C> | undefined {
    return this.byTopic.get(topic);
  }

  /** Messages held for slow connections (part of ws_message_queue_size). */
  queuedMessages(): number {
    let total = 0;
    for (const state of this.states.values())
      total += state.queue.length + state.latest.size + state.resnapshot.size;
    return total;
  }

  /** Periodic check of every open connection's buffer. */
  check(connections: Iterable<C>, now: number): void {
    for (const connection of connections) {
      const buffered = connection.bufferedAmount();
      if (buffered <= this.options.highWaterBytes) {
        this.overSince.delete(connection);
        if (this.states.has(connection) && buffered < this.lowWaterBytes) this.resume(connection);
        continue;
      }
      const since = this.overSince.get(connection);
      if (since === undefined) {
        this.overSince.set(connection, now);
        this.enterSlow(connection);
      } else if (now - since > this.options.slowConsumerTimeoutMs) {
        this.disconnect(connection, 'timeout');
      }
    }
  }

  /** uWS reported the connection's buffer drained: resume it if it is low enough. */
  drained(connection: C): void {
    if (this.states.has(connection) && connection.bufferedAmount() < this.lowWaterBytes)
      this.resume(connection);
  }

  /** A message published on a topic this slow connection was taken off. */
  capture(connection: C, topic: string, channel: Channel, payload: string): void {
    const state = this.states.get(connection);
    if (!state) return;
    if (isBook(channel)) {
      if (state.resnapshot.has(topic)) this.observer.conflated(channel);
      state.resnapshot.add(topic);
    } else if (isTicker(channel)) {
      if (state.latest.has(topic)) this.observer.conflated(channel);
      state.latest.set(topic, payload);
    } else {
      state.queue.push({ topic, payload });
      if (state.queue.length > this.options.slowQueueMaxMessages)
        this.disconnect(connection, 'queue_overflow');
    }
  }

  /** A subscription that completed while its connection was slow: keep it captured instead. */
  captureNew(connection: C, topic: string, channel: Channel, initial: readonly string[]): void {
    const state = this.states.get(connection);
    if (!state) return;
    this.track(connection, state, topic, channel);
    for (const payload of initial) this.capture(connection, topic, channel, payload);
  }

  /** The connection is live on `topic` again (its fresh snapshot went out). */
  released(connection: C, topic: string): void {
    const state = this.states.get(connection);
    if (!state) return;
    this.untrack(connection, state, topic);
    state.resnapshot.delete(topic);
    if (!state.slow && state.captured.size === 0) this.states.delete(connection);
  }

  /** The client unsubscribed from a topic that was captured. */
  unsubscribed(connection: C, topic: string): void {
    const state = this.states.get(connection);
    if (!state) return;
    this.untrack(connection, state, topic);
    state.resnapshot.delete(topic);
    state.latest.delete(topic);
    // A client that left a topic must not get its queued messages after the `subscriptions` reply.
    const kept = state.queue.filter((entry) => entry.topic !== topic);
    state.queue.splice(0, state.queue.length, ...kept);
  }

  closed(connection: C): void {
    const state = this.states.get(connection);
    this.overSince.delete(connection);
    if (!state) return;
    if (state.slow) this.observer.slowConsumersChanged(-1);
    for (const topic of [...state.captured.keys()]) this.untrack(connection, state, topic);
    this.states.delete(connection);
  }

  private enterSlow(connection: C): void {
    let state = this.states.get(connection);
    if (!state) {
      state = { captured: new Map(), queue: [], latest: new Map(), resnapshot: new Set(), slow: false };
      this.states.set(connection, state);
    }
    if (state.slow) return;
    state.slow = true;
    this.observer.slowConsumersChanged(1);
    for (const topic of connection.topics()) {
      connection.unsubscribe(topic);
      this.track(connection, state, topic, channelOfTopic(topic));
    }
  }

  private resume(connection: C): void {
    const state = this.states.get(connection)!;
    this.overSince.delete(connection);
    // Already resumed and only waiting for fresh snapshots: those were asked for once.
    if (!state.slow) return;
    // In order: what was queued, then the latest tickers, then fresh books.
    const backlog = state.queue.splice(0).map((entry) => entry.payload);
    if (backlog.length > 0) connection.sendAll(backlog);
    state.slow = false;
    this.observer.slowConsumersChanged(-1);
    const latest = [...state.latest.values()];
    state.latest.clear();
    if (latest.length > 0) connection.sendAll(latest);
    for (const [topic, channel] of [...state.captured]) {
      if (isBook(channel)) {
        // Stays captured (conflating) until the fresh snapshot goes out: see released().
        state.resnapshot.add(topic);
        connection.resnapshot(topic);
      } else {
        this.untrack(connection, state, topic);
        connection.subscribe(topic);
      }
    }
    if (state.captured.size === 0) this.states.delete(connection);
  }

  private disconnect(connection: C, reason: SlowDisconnectReason): void {
    this.observer.disconnected(reason);
    connection.disconnectSlow(reason);
  }

  private track(connection: C, state: SlowState, topic: string, channel: Channel): void {
    state.captured.set(topic, channel);
    let set = this.byTopic.get(topic);
    if (!set) {
      set = new Set();
      this.byTopic.set(topic, set);
    }
    set.add(connection);
  }

  private untrack(connection: C, state: SlowState, topic: string): void {
    state.captured.delete(topic);
    const set = this.byTopic.get(topic);
    set?.delete(connection);
    if (set?.size === 0) this.byTopic.delete(topic);
  }
}

/** Topics are `channel:product` (or `status`): see topicOf. */
function channelOfTopic(topic: string): Channel {
  const colon = topic.indexOf(':');
  return (colon < 0 ? topic : topic.slice(0, colon)) as Channel;
}
