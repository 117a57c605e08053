import type { WebSocket } from 'uWebSockets.js';
import {
  CLIENT_ERRORS,
  CLOSE_CODES,
  type ClientErrorSpec,
  clientError,
  type DisconnectReason,
  encodeClientError,
  SLOW_CONSUMER_REASONS,
} from '../errors/catalogue.js';
import { BurstyCount, type InboundCounts } from '../limits/rate-limits.js';
import { type Channel, topicOf } from '../market/types.js';
import type { ClientConnection, ClientSession } from '../session/session.js';
import type { FlowConnection, FlowControl, SlowDisconnectReason } from './flow-control.js';

interface Counter {
  inc(n?: number): void;
}

/**
 * What every connection of one transport uses: built once per transport, so that a connection holds
 * one reference to it instead of a closure per operation.
 */
export interface ConnectionContext {
  /** MarketAccess.requestInitial: the messages a new subscriber gets first. */
  requestInitial(channel: Channel, productId: string, deliver: (messages: readonly string[]) => void): void;
  readonly flow: FlowControl<Connection>;
  readonly controlSent: Counter;
  readonly resumedSent: Counter;
  readonly sentByChannel: ReadonlyMap<Channel, Counter>;
  errorSent(code: string): void;
  /** uWS's maxBackpressure: over it, uWS drops a message and closes the socket. */
  readonly maxBackpressureBytes: number;
  readonly outbound: OutboundBytes;
}

/**
 * What the transport has handed to uWS since it started, over all its sockets (a published message
 * once, whatever its subscribers), and how many flow-control sweeps it has run: together they bound
 * from above what any one socket can have buffered since a sweep looked at it, without per-subscriber
 * work (see Connection.cutAtHardLimit).
 */
export class OutboundBytes {
  bytes = 0;
  sweeps = 0;

  /** A frame of `payloadLength` characters (ASCII JSON: one byte each), header included. */
  add(payloadLength: number): void {
    this.bytes += payloadLength + MAX_FRAME_HEADER;
  }
}

const slowConsumerReasons: Readonly<Record<SlowDisconnectReason, string>> = SLOW_CONSUMER_REASONS;
/** Not a channel's topic (those are `channel:product` or `status`): see Connection.unsubscribe. */
const HOLD_TOPIC = 'flow-control:hold';
/** uWS's send() result for a message it did not send because the buffer was over maxBackpressure. */
const DROPPED = 2;
/** The longest WebSocket frame header a server writes (no mask, 64-bit length). */
const MAX_FRAME_HEADER = 10;
let attachTokens = 0;

/**
 * What a socket carries as its uWS user data. uWS copies the user data's own properties onto the
 * socket object (getUserData() returns the socket itself, not the object given to upgrade), so a
 * class instance would lose its prototype: the connection travels in a property.
 */
export interface SocketData {
  readonly connection: Connection;
}

/**
 * One WebSocket connection: its state, and the socket as its ClientSession and flow control see it.
 * Created at upgrade, before uWS has a socket (see `opened`). Idle connections are what a
 * gateway holds by the thousand, so everything here is paid per connection: methods live on the
 * prototype, what most connections never need (pending attaches) is only allocated while in use, and
 * times are whole milliseconds (see monotonicMs).
 */
export class Connection implements ClientConnection, FlowConnection, InboundCounts {
  /** Last frame or pong from the peer (monotonicMs()), to tell an idle timeout from a drop. */
  lastSeen: number;
  /** monotonicMs() at upgrade. */
  readonly openedAt: number;
  readonly messageCount = new BurstyCount();
  readonly subscribeCount = new BurstyCount();
  session: ClientSession | undefined = undefined;
  /** Set when the gateway decides to close, so the close handler counts the right reason. */
  closeReason: DisconnectReason | undefined = undefined;
  closed = false;
  /** Bytes uWS held for the socket when flow control last looked. */
  lastBuffered = 0;
  /**
   * OutboundBytes.bytes at the sweep before the last one that read this socket: everything uWS
   * can have taken for it since lastBuffered was read (including messages still queued in uWS's
   * topic tree then: those were published after that earlier sweep, in a later loop turn).
   */
  private sentMarkBefore: number;
  /** OutboundBytes.bytes at the last sweep that read this socket, and that sweep's number. */
  private sentMarkLast: number;
  private markedAtSweep: number;
  /** Set when uWS dropped one of this connection's messages: nothing more may be delivered. */
  droppedByUws = false;
  /** Subscribed to HOLD_TOPIC. */
  private holding = false;
  private socket: WebSocket<SocketData> | undefined = undefined;
  /** Topic → token of the latest attach still waiting for its initial messages; undefined when none. */
  private pendingAttaches: Map<string, number> | undefined = undefined;

  constructor(
    private readonly context: ConnectionContext,
    /** The client's address as canonical text: the admission and connect-gate key, released on close. */
    readonly clientIp: string,
    now: number,
  ) {
    this.lastSeen = now;
    this.openedAt = now;
    this.sentMarkBefore = context.outbound.bytes;
    this.sentMarkLast = context.outbound.bytes;
    this.markedAtSweep = context.outbound.sweeps;
  }

  /** uWS opened the socket: from now on the connection can send. */
  opened(socket: WebSocket<SocketData>): void {
    this.socket = socket;
  }

  private get ws(): WebSocket<SocketData> {
    if (!this.socket) throw new Error('connection used before its socket opened');
    return this.socket;
  }

  /** Closes with `code` unless already closed, recording why for the close handler. */
  end(code: number, message: string, reason: DisconnectReason): void {
    if (this.closed) return;
    this.closeReason = reason;
    this.ws.end(code, message);
  }

  /** Sends an error; with `close`, then closes the connection with that code. */
  fail(spec: ClientErrorSpec, reason: string, close?: { code: number; reason: DisconnectReason }): void {
    const payload = encodeClientError(clientError(spec, reason));
    this.context.outbound.add(payload.length);
    this.ws.send(payload, false, false);
    this.context.errorSent(spec.code);
    if (close) this.end(close.code, spec.message, close.reason);
  }

  // --- ClientConnection ----------------------------------------------------------------------

  sendControl(payload: string): void {
    // A dropped reply is not retried: uWS closes the socket (closeOnBackpressureLimit).
    this.context.outbound.add(payload.length);
    if (this.ws.send(payload, false, false) === DROPPED) this.droppedByUws = true;
    else this.context.controlSent.inc();
  }

  attach(channel: Channel, productId: string): void {
    const topic = topicOf(channel, productId);
    const token = ++attachTokens;
    if (this.pendingAttaches) this.pendingAttaches.set(topic, token);
    else this.pendingAttaches = new Map([[topic, token]]);
    this.context.requestInitial(channel, productId, (initial) =>
      this.initialArrived(topic, channel, token, initial),
    );
  }

  detach(channel: Channel, productId: string): void {
    const topic = topicOf(channel, productId);
    this.forgetAttach(topic);
    this.context.flow.unsubscribed(this, topic);
    this.ws.unsubscribe(topic);
  }

  // --- FlowConnection ------------------------------------------------------------------------

  bufferedAmount(): number {
    this.lastBuffered = this.ws.getBufferedAmount();
    const { outbound } = this.context;
    if (this.markedAtSweep !== outbound.sweeps) {
      this.markedAtSweep = outbound.sweeps;
      this.sentMarkBefore = this.sentMarkLast;
      this.sentMarkLast = outbound.bytes;
    }
    return this.lastBuffered;
  }

  topics(): readonly string[] {
    const topics = this.ws.getTopics();
    return this.holding ? topics.filter((topic) => topic !== HOLD_TOPIC) : topics;
  }

  subscribe(topic: string): void {
    const ws = this.ws;
    ws.subscribe(topic);
    if (!this.holding) return;
    ws.unsubscribe(HOLD_TOPIC);
    this.holding = false;
  }

  /**
   * uWS frees a socket's subscriber when it leaves its last topic, and with it the messages
   * published to it earlier in this event-loop turn and not yet written (a silent gap): so flow
   * control's connection first joins a topic nobody publishes on, and leaves it on its next
   * subscribe.
   */
  unsubscribe(topic: string): void {
    const ws = this.ws;
    if (!this.holding) {
      ws.subscribe(HOLD_TOPIC);
      this.holding = true;
    }
    ws.unsubscribe(topic);
  }

  sendPiece(payloads: readonly string[]): boolean {
    if (!this.sendCorked(payloads)) return false;
    this.context.resumedSent.inc(payloads.length);
    return true;
  }

  resnapshot(topic: string): void {
    const colon = topic.indexOf(':');
    this.attach(topic.slice(0, colon) as Channel, topic.slice(colon + 1));
  }

  disconnectSlow(reason: SlowDisconnectReason): void {
    this.fail(CLIENT_ERRORS.slowConsumer, slowConsumerReasons[reason], {
      code: CLOSE_CODES.slowConsumer,
      reason: 'slow_consumer',
    });
  }

  // -------------------------------------------------------------------------------------------

  private initialArrived(topic: string, channel: Channel, token: number, initial: readonly string[]): void {
    // The client may have left, unsubscribed, or re-subscribed while we waited.
    if (this.closed || this.pendingAttaches?.get(topic) !== token) return;
    this.forgetAttach(topic);
    const { flow } = this.context;
    if (flow.isSlow(this)) {
      flow.captureNew(this, topic, channel, initial);
      return;
    }
    if (!this.sendCorked(initial)) {
      // Subscribing now would deliver updates after a message the client never got.
      flow.overLimit(this);
      return;
    }
    if (initial.length > 0) this.context.sentByChannel.get(channel)!.inc(initial.length);
    this.subscribe(topic);
    flow.released(this, topic);
  }

  private forgetAttach(topic: string): void {
    if (!this.pendingAttaches?.delete(topic)) return;
    if (this.pendingAttaches.size === 0) this.pendingAttaches = undefined;
  }

  /** False, having sent nothing more, once uWS drops a message (now or earlier). */
  private sendCorked(payloads: readonly string[]): boolean {
    if (this.droppedByUws) return false;
    const ws = this.ws;
    ws.cork(() => {
      for (const payload of payloads) {
        this.context.outbound.add(payload.length);
        if (ws.send(payload, false, false) !== DROPPED) continue;
        this.droppedByUws = true;
        return;
      }
    });
    return !this.droppedByUws;
  }

  /**
   * A close the gateway did not ask for that uWS may have made at maxBackpressure: it dropped one
   * of our messages, or it cut the socket while publishing to it. uWS's close handler gets 1006 and
   * no reason either way, as for a dropped network connection, and the socket's buffered amount can
   * no longer be read there; so a 1006 counts as a cut when the bytes held at the last reading plus
   * everything handed to uWS since could exceed the limit (uWS drops only over it). A network drop
   * in a burst that large is counted as a cut too; a cut is never counted as a network error.
   */
  cutAtHardLimit(code: number): boolean {
    if (this.droppedByUws) return true;
    const sentSince = this.context.outbound.bytes - this.sentMarkBefore;
    return code === 1006 && this.lastBuffered + sentSince > this.context.maxBackpressureBytes;
  }
}
