import type { Channel } from '../market/types.js';

/**
 * Per-connection flow control. uWS publishes each message once to every subscriber of a topic,
 * but silently skips a subscriber whose buffer is over maxBackpressure. So a connection whose
 * buffer passes the high-water mark is taken off its topics before that can happen, and served
 * from a bounded, conflating queue of its own:
 *   - level2/level2_batch: nothing queued, only "send a fresh snapshot on resume";
 *   - ticker/ticker_batch: the latest ticker per product;
 *   - matches, heartbeat, status: queued in order, up to a bound.
 * Below a quarter of the high-water mark it catches up: the queue, then the latest tickers, go out
 * in pieces that follow uWS's backpressure (a piece only while less than half the high-water mark
 * is buffered, the next one when the socket drains), while it stays off its topics and what is
 * published meanwhile joins the queue. With everything delivered it is put back on its topics, and
 * each level2 topic gets a fresh snapshot, one at a time under the same budget. Over the mark for
 * too long, a catch-up not done in time, a full queue or a message uWS dropped all end the
 * connection with ErrSlowConsume. Nothing is dropped silently: a message a client does not get is
 * superseded by one it does get, or the connection is closed. Only slow connections cost JS per
 * message.
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
  /**
   * Sends messages in one corked write. False if uWS dropped one (the buffer was over its hard
   * limit): what follows would be a gap, so the connection must be cut.
   */
  sendPiece(payloads: readonly string[]): boolean;
  /** Re-attaches a level2 topic: a fresh snapshot, then live updates (see released()). */
  resnapshot(topic: string): void;
  /** Sends ErrSlowConsume and closes with the slow-consumer close code. */
  disconnectSlow(reason: SlowDisconnectReason): void;
}

/** Why flow control cut a connection off (uWS's own cuts at maxBackpressure are counted by the transport). */
export type SlowDisconnectReason = 'timeout' | 'queue_overflow' | 'backpressure_limit';

export interface FlowObserver {
  slowConsumersChanged(delta: number): void;
  conflated(channel: Channel): void;
  disconnected(reason: SlowDisconnectReason): void;
}

/**
 * behind: over the high-water mark, nothing sent; catching_up: its queue is going out in pieces;
 * resnapshotting: live on its topics again except level2 ones still waiting for a fresh snapshot.
 * The first two count as slow.
 */
type Phase = 'behind' | 'catching_up' | 'resnapshotting';

interface QueuedMessage {
  readonly topic: string;
  readonly payload: string;
}

interface SlowState {
  /** Topics taken off uWS for this connection, with the channel each carries. */
  readonly captured: Map<string, Channel>;
  /** In order; entries before `head` were sent (a catch-up takes from the front as more arrive at the back). */
  queue: QueuedMessage[];
  head: number;
  readonly latest: Map<string, string>;
  /** Book topics owed a fresh snapshot. */
  readonly resnapshot: Set<string>;
  phase: Phase;
  /** catching_up: by when everything owed must be out. */
  deadline: number;
  /** resnapshotting: the book topic whose snapshot was asked for and has not gone out yet. */
  requested: string | undefined;
}

/**
 * A catch-up piece or a fresh snapshot goes out only while less than this is buffered: below the
 * high-water mark, so catching up never makes the connection look slow again, and far below the
 * hard limit, so the piece's last message and an ErrSlowConsume after it are never dropped (the
 * startup check, src/config/catch-up-fit.ts, makes sure of the second).
 */
export function catchUpBudget(highWaterBytes: number): number {
  return Math.floor(highWaterBytes / 2);
}

/** Sent entries at the front of a queue are let go once they are this many and half of it. */
const COMPACT_AFTER = 1024;

const isBook = (channel: Channel) => channel === 'level2' || channel === 'level2_batch';
const isTicker = (channel: Channel) => channel === 'ticker' || channel === 'ticker_batch';

export class FlowControl<C extends FlowConnection> {
  private readonly states = new Map<C, SlowState>();
  private readonly byTopic = new Map<string, Set<C>>();
  /** When each connection went over the high-water mark (and has stayed over since). */
  private readonly overSince = new Map<C, number>();
  private readonly lowWaterBytes: number;
  /** See catchUpBudget. */
  private readonly sendBudgetBytes: number;

  constructor(
    private readonly options: FlowControlOptions,
    private readonly observer: FlowObserver,
  ) {
    this.lowWaterBytes = Math.floor(options.highWaterBytes / 4);
    this.sendBudgetBytes = catchUpBudget(options.highWaterBytes);
  }

  /** True while the connection is served from its own queue instead of its topics. */
  isSlow(connection: C): boolean {
    const phase = this.states.get(connection)?.phase;
    return phase === 'behind' || phase === 'catching_up';
  }

  /** Connections captured on a topic: the only per-subscriber work, and only for slow ones. */
  capturing(topic: string): ReadonlySet<C> | undefined {
    return this.byTopic.get(topic);
  }

  /** Messages held for slow connections (part of ws_message_queue_size). */
  queuedMessages(): number {
    let total = 0;
    for (const state of this.states.values())
      total += state.queue.length - state.head + state.latest.size + state.resnapshot.size;
    return total;
  }

  /** Periodic check of every open connection's buffer. */
  check(connections: Iterable<C>, now: number): void {
    for (const connection of connections) {
      const state = this.states.get(connection);
      if (state?.phase === 'catching_up') {
        if (now > state.deadline) this.disconnect(connection, 'timeout');
        else this.pump(connection, state);
        continue;
      }
      const buffered = connection.bufferedAmount();
      if (buffered <= this.options.highWaterBytes) {
        this.overSince.delete(connection);
        if (state) this.proceed(connection, state, buffered, now);
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

  /**
   * The part of check() that keeps uWS's hard limit out of reach, for a look between two sweeps
   * (in the middle of a turn's publishes): a connection over the high-water mark is taken off its
   * topics. Nothing is sent, so nothing here reenters the publisher.
   */
  takeOffOverHigh(connections: Iterable<C>, now: number): void {
    for (const connection of connections) {
      if (this.overSince.has(connection) || this.states.get(connection)?.phase === 'catching_up') continue;
      if (connection.bufferedAmount() <= this.options.highWaterBytes) continue;
      this.overSince.set(connection, now);
      this.enterSlow(connection);
    }
  }

  /** uWS reported the connection's buffer drained: catch up, or send more of what it is owed. */
  drained(connection: C, now: number): void {
    const state = this.states.get(connection);
    if (!state) return;
    if (state.phase === 'catching_up') this.pump(connection, state);
    else this.proceed(connection, state, connection.bufferedAmount(), now);
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
      if (state.queue.length - state.head > this.options.slowQueueMaxMessages)
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
    if (state.requested === topic) state.requested = undefined;
    this.settle(connection, state);
  }

  /** The client unsubscribed from a topic that was captured. */
  unsubscribed(connection: C, topic: string): void {
    const state = this.states.get(connection);
    if (!state) return;
    this.untrack(connection, state, topic);
    state.resnapshot.delete(topic);
    state.latest.delete(topic);
    // A client that left a topic must not get its queued messages after the `subscriptions` reply.
    state.queue = state.queue.slice(state.head).filter((entry) => entry.topic !== topic);
    state.head = 0;
    // Its snapshot's reply is ignored now (the attach was forgotten): ask for the next one.
    if (state.requested === topic) state.requested = undefined;
    this.settle(connection, state);
  }

  /**
   * uWS dropped a message of the connection's (its buffer was over the hard limit): cut it off
   * before anything after the gap goes out.
   */
  overLimit(connection: C): void {
    this.disconnect(connection, 'backpressure_limit');
  }

  closed(connection: C): void {
    const state = this.states.get(connection);
    this.overSince.delete(connection);
    if (!state) return;
    if (this.isSlow(connection)) this.observer.slowConsumersChanged(-1);
    for (const topic of [...state.captured.keys()]) this.untrack(connection, state, topic);
    this.states.delete(connection);
  }

  /** A connection at or under the mark, with `buffered` bytes waiting: on to its next step. */
  private proceed(connection: C, state: SlowState, buffered: number, now: number): void {
    if (state.phase === 'resnapshotting') this.requestSnapshot(connection, state, buffered);
    else if (state.phase === 'behind' && buffered < this.lowWaterBytes) {
      state.phase = 'catching_up';
      state.deadline = now + this.options.slowConsumerTimeoutMs;
      this.overSince.delete(connection);
      this.pump(connection, state);
    }
  }

  private enterSlow(connection: C): void {
    let state = this.states.get(connection);
    if (!state) {
      state = {
        captured: new Map(),
        queue: [],
        head: 0,
        latest: new Map(),
        resnapshot: new Set(),
        phase: 'behind',
        deadline: 0,
        requested: undefined,
      };
      this.states.set(connection, state);
    } else if (state.phase !== 'resnapshotting') {
      return;
    }
    state.phase = 'behind';
    // A snapshot still on its way is captured when it arrives (captureNew) and asked for again.
    state.requested = undefined;
    this.observer.slowConsumersChanged(1);
    for (const topic of connection.topics()) {
      connection.unsubscribe(topic);
      this.track(connection, state, topic, channelOfTopic(topic));
    }
  }

  /**
   * Sends what the connection is owed, in order (queue, then latest tickers), as far as the
   * budget allows; the drain event or the next check continues. Once all is out, it goes live.
   */
  private pump(connection: C, state: SlowState): void {
    while (state.head < state.queue.length || state.latest.size > 0) {
      const room = this.sendBudgetBytes - connection.bufferedAmount();
      if (room <= 0) return;
      if (!connection.sendPiece(takePiece(state, room))) {
        this.overLimit(connection);
        return;
      }
    }
    state.queue = [];
    state.head = 0;
    this.goLive(connection, state);
  }

  /**
   * Nothing is owed but fresh books: back on every other topic in the same turn (so nothing
   * published in between is missed), book topics stay captured until their snapshot went out.
   */
  private goLive(connection: C, state: SlowState): void {
    state.phase = 'resnapshotting';
    this.observer.slowConsumersChanged(-1);
    for (const [topic, channel] of [...state.captured]) {
      if (isBook(channel)) {
        state.resnapshot.add(topic);
      } else {
        this.untrack(connection, state, topic);
        connection.subscribe(topic);
      }
    }
    this.settle(connection, state);
  }

  /** After a resume: done when no book topic is left, else the next snapshot when there is room. */
  private settle(connection: C, state: SlowState): void {
    if (state.phase !== 'resnapshotting') return;
    if (state.captured.size === 0) this.states.delete(connection);
    else this.requestSnapshot(connection, state, connection.bufferedAmount());
  }

  /** One snapshot at a time, each when less than the budget is buffered: a resume of many books cannot reach the hard limit. */
  private requestSnapshot(connection: C, state: SlowState, buffered: number): void {
    if (state.requested !== undefined || buffered >= this.sendBudgetBytes) return;
    for (const [topic, channel] of state.captured) {
      if (!isBook(channel)) continue;
      state.requested = topic;
      connection.resnapshot(topic);
      return;
    }
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

/**
 * Takes the next messages owed, about `room` characters of them and at least one: queued ones
 * first, then the latest tickers.
 */
function takePiece(state: SlowState, room: number): string[] {
  const piece: string[] = [];
  let size = 0;
  while (size < room && state.head < state.queue.length) {
    const payload = state.queue[state.head++]!.payload;
    piece.push(payload);
    size += payload.length;
  }
  if (state.head >= COMPACT_AFTER && state.head * 2 >= state.queue.length) {
    state.queue = state.queue.slice(state.head);
    state.head = 0;
  }
  for (const [topic, payload] of state.latest) {
    if (size >= room) break;
    state.latest.delete(topic);
    piece.push(payload);
    size += payload.length;
  }
  return piece;
}

/** Topics are `channel:product` (or `status`): see topicOf. */
function channelOfTopic(topic: string): Channel {
  const colon = topic.indexOf(':');
  return (colon < 0 ? topic : topic.slice(0, colon)) as Channel;
}
