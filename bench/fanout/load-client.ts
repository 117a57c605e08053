/**
 * A fan-out load-client process: holds many WebSocket connections to one server (a peer or the
 * gateway), all subscribed to the same topics, and measures what they receive. Started by
 * FanoutClient (load-client-handle.ts) and driven over IPC: see client-protocol.ts.
 *
 * Per l2update it checks the sequence (one more than the last on that connection and topic), and
 * records the latency from the message's `time` (its scheduled time) to the TCP read that brought it,
 * in an HDR histogram. The clock is performance.timeOrigin + performance.now(), the one the servers
 * stamp with, on the same machine. The hot path allocates nothing per message (see wire.ts and
 * l2-reader.ts), so the generator stays much cheaper per message than the servers it measures; its
 * own event-loop utilisation is reported so that a saturated generator is never mistaken for a
 * slow server.
 */
import { performance } from 'node:perf_hooks';
import type {
  ClientConfig,
  ClientToParent,
  ConnectCommand,
  ConnectReport,
  MeasureCommand,
  ParentToClient,
  StreamReport,
} from './client-protocol.js';
import { encodeHistogram, type Histogram, newHistogram } from './hdr.js';
import {
  errorCode,
  kindAt,
  MessageKind,
  readUpdate,
  snapshotSequence,
  TopicIndex,
  typeValueAt,
  type UpdateFields,
} from './l2-reader.js';
import { WireConnection } from './wire.js';

const epochMs = () => performance.timeOrigin + performance.now();
const increment = (record: Record<string, number>, key: string) => {
  record[key] = (record[key] ?? 0) + 1;
};

/** The figures of one measurement window. */
class Window {
  delivered = 0;
  bytes = 0;
  scheduledInWindow = 0;
  onSchedule = 0;
  gaps = 0;
  missingSequences = 0;
  staleUpdates = 0;
  updatesBeforeSnapshot = 0;
  resnapshots = 0;
  readonly latency: Histogram = newHistogram();
  readonly sequenceAtFrom: Float64Array;
  readonly sequenceAtTo: Float64Array;
  eluStart = performance.eventLoopUtilization();
  cpuStart = process.cpuUsage();
  eluEnd: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  cpuEnd: NodeJS.CpuUsage | undefined;

  /** Equal latencies in a row (a read's messages of one tick) are recorded once, with their count. */
  private runMicros = -1;
  private runCount = 0;

  constructor(
    readonly command: MeasureCommand,
    highestSeen: Float64Array,
  ) {
    this.sequenceAtFrom = Float64Array.from(highestSeen);
    this.sequenceAtTo = Float64Array.from(highestSeen);
  }

  recordLatency(micros: number): void {
    if (micros === this.runMicros) {
      this.runCount++;
      return;
    }
    this.flushLatency();
    this.runMicros = micros;
    this.runCount = 1;
  }

  flushLatency(): void {
    if (this.runCount > 0) this.latency.recordValueWithCount(this.runMicros, this.runCount);
    this.runCount = 0;
    this.runMicros = -1;
  }
}

interface Connection {
  readonly wire: WireConnection;
  /** Per topic index: the last sequence seen (-1: none yet). */
  readonly lastSequence: Float64Array;
  /** Snapshots still expected before the connection is ready. */
  awaitingSnapshots: number;
  acknowledged: boolean;
  ready: boolean;
  closed: boolean;
}

class FanoutLoadClient {
  private readonly topics: TopicIndex;
  private readonly subscribed: number[];
  private readonly subscribeRequest: string;
  private readonly connections: Connection[] = [];
  private readonly highestSeen: Float64Array;
  private readonly fields: UpdateFields = { sequence: 0, timeEpochMs: 0 };
  private readonly closes: Record<string, number> = {};
  private readonly errors: Record<string, number> = {};
  private window: Window | undefined;
  /** Open only from the window's start to its end (wall clock). */
  private receiving = false;

  constructor(private readonly config: ClientConfig) {
    this.topics = new TopicIndex(config.topics);
    this.subscribed = config.subscribe.map((topic) => config.topics.indexOf(topic));
    if (this.subscribed.some((i) => i < 0)) throw new Error('subscribe names a topic not in topics');
    this.highestSeen = new Float64Array(config.topics.length).fill(-1);
    const request = JSON.stringify({
      type: 'subscribe',
      product_ids: config.subscribe,
      channels: ['level2'],
    });
    this.subscribeRequest = config.socketIo
      ? `42${JSON.stringify(['subscribe', JSON.parse(request)])}`
      : request;
  }

  /** Opens `count` connections, `concurrency` at a time, each until ready (or failed). */
  async connect(command: ConnectCommand): Promise<ConnectReport> {
    const wait = command.startAtEpochMs - epochMs();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const startedAtEpochMs = epochMs();
    const eluStart = performance.eventLoopUtilization();
    const cpuStart = process.cpuUsage();
    const deadline = startedAtEpochMs + command.readyTimeoutMs;
    const errors: Record<string, number> = {};
    let next = 0;
    let opened = 0;
    let ready = 0;
    let lastOpenedAtEpochMs = startedAtEpochMs;
    let lastReadyAtEpochMs = startedAtEpochMs;
    const openOne = () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(
          () => {
            increment(errors, 'ready timeout');
            resolve();
          },
          Math.max(1, deadline - epochMs()),
        );
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        this.open({
          opened: (at) => {
            opened++;
            lastOpenedAtEpochMs = Math.max(lastOpenedAtEpochMs, at);
          },
          ready: (at) => {
            ready++;
            lastReadyAtEpochMs = Math.max(lastReadyAtEpochMs, at);
            done();
          },
          failed: (reason) => {
            increment(errors, reason);
            done();
          },
        });
      });
    const worker = async () => {
      while (next < command.count && epochMs() < deadline) {
        next++;
        await openOne();
      }
    };
    await Promise.all(Array.from({ length: Math.min(command.concurrency, command.count) }, worker));
    const cpu = process.cpuUsage(cpuStart);
    return {
      eventLoopUtilization: performance.eventLoopUtilization(eluStart).utilization,
      cpuCores: (cpu.user + cpu.system) / 1000 / Math.max(1, epochMs() - startedAtEpochMs),
      requested: command.count,
      opened,
      ready,
      failed: command.count - ready,
      startedAtEpochMs,
      lastOpenedAtEpochMs,
      lastReadyAtEpochMs,
      errors,
    };
  }

  /** Starts a window (counters reset now; counting from its start); reports at its end + grace. */
  measure(command: MeasureCommand, report: (r: StreamReport) => void): void {
    const window = new Window(command, this.highestSeen);
    this.window = window;
    const now = epochMs();
    setTimeout(
      () => {
        window.eluStart = performance.eventLoopUtilization();
        window.cpuStart = process.cpuUsage();
        this.receiving = true;
      },
      Math.max(0, command.fromEpochMs - now),
    );
    setTimeout(
      () => {
        this.receiving = false;
        window.eluEnd = performance.eventLoopUtilization(window.eluStart);
        window.cpuEnd = process.cpuUsage(window.cpuStart);
      },
      Math.max(0, command.toEpochMs - now),
    );
    setTimeout(
      () => {
        if (this.window === window) this.window = undefined;
        report(this.reportOf(window));
      },
      Math.max(0, command.toEpochMs + command.graceMs - now),
    );
  }

  closeAll(): void {
    for (const connection of this.connections) connection.wire.destroy();
  }

  private reportOf(window: Window): StreamReport {
    const { fromEpochMs, toEpochMs } = window.command;
    const windowMs = toEpochMs - fromEpochMs;
    const cpu = window.cpuEnd ?? process.cpuUsage(window.cpuStart);
    window.flushLatency();
    const subscribers = new Array<number>(this.config.topics.length).fill(0);
    let open = 0;
    for (const connection of this.connections) {
      if (connection.closed || !connection.ready) continue;
      open++;
      for (const topic of this.subscribed) subscribers[topic]!++;
    }
    return {
      label: this.config.label,
      windowMs,
      eventLoopUtilization: (window.eluEnd ?? performance.eventLoopUtilization(window.eluStart)).utilization,
      cpuCores: (cpu.user + cpu.system) / 1000 / windowMs,
      connections: open,
      delivered: window.delivered,
      bytes: window.bytes,
      latency: encodeHistogram(window.latency),
      scheduledInWindow: window.scheduledInWindow,
      onSchedule: window.onSchedule,
      gaps: window.gaps,
      missingSequences: window.missingSequences,
      staleUpdates: window.staleUpdates,
      updatesBeforeSnapshot: window.updatesBeforeSnapshot,
      resnapshots: window.resnapshots,
      sequenceAtFrom: Array.from(window.sequenceAtFrom),
      sequenceAtTo: Array.from(window.sequenceAtTo),
      subscribers,
      closes: { ...this.closes },
      errors: { ...this.errors },
    };
  }

  private open(events: {
    opened: (at: number) => void;
    ready: (at: number) => void;
    failed: (reason: string) => void;
  }): void {
    const { config } = this;
    let connection: Connection | undefined;
    let settled = false;
    const becomeReady = (at: number) => {
      if (!connection || connection.ready) return;
      connection.ready = true;
      settled = true;
      events.ready(at);
    };
    const wire = new WireConnection(
      { host: config.host, port: config.port, path: config.path, localAddress: config.localAddress },
      {
        onOpen: (at) => {
          events.opened(at);
          // Socket.IO first sends its open packet; the subscribe follows the namespace connect.
          if (!config.socketIo) wire.sendText(this.subscribeRequest);
        },
        onText: (chunk, start, end, now) => {
          if (!connection) return;
          if (config.socketIo) this.onSocketIo(connection, chunk, start, end, now, becomeReady);
          else this.onMessage(connection, chunk, start, end, now, becomeReady);
        },
        onClose: (reason) => {
          if (connection) connection.closed = true;
          increment(this.closes, reason);
          if (!settled) {
            settled = true;
            events.failed(reason);
          }
        },
      },
    );
    connection = {
      wire,
      lastSequence: new Float64Array(config.topics.length).fill(-1),
      awaitingSnapshots: config.expectSnapshot ? this.subscribed.length : 0,
      acknowledged: false,
      ready: false,
      closed: false,
    };
    this.connections.push(connection);
  }

  /** Engine.IO packets: 0 open, 2 ping, 40 namespace connected, 42 an event; the rest is ignored. */
  private onSocketIo(
    connection: Connection,
    chunk: Buffer,
    start: number,
    end: number,
    now: number,
    becomeReady: (at: number) => void,
  ): void {
    const first = chunk[start];
    if (first === 0x34 /* 4 */) {
      const second = chunk[start + 1];
      if (second === 0x32 /* 2: event */) this.onMessage(connection, chunk, start, end, now, becomeReady);
      else if (second === 0x30 /* 0: connected */) connection.wire.sendText(this.subscribeRequest);
      return;
    }
    if (first === 0x32 /* 2: ping */) connection.wire.sendText('3');
    else if (first === 0x30 /* 0: open */) connection.wire.sendText('40');
  }

  private onMessage(
    connection: Connection,
    chunk: Buffer,
    start: number,
    end: number,
    now: number,
    becomeReady: (at: number) => void,
  ): void {
    const typeAt = typeValueAt(chunk, start, end);
    if (typeAt < 0) return;
    switch (kindAt(chunk, typeAt)) {
      case MessageKind.L2Update:
        this.onUpdate(connection, chunk, typeAt, end, end - start, now);
        return;
      case MessageKind.Snapshot: {
        const topic = this.topics.find(chunk, start, end);
        const sequence = snapshotSequence(chunk, start, end);
        if (topic < 0 || sequence < 0) return;
        if (connection.lastSequence[topic]! >= 0 || connection.ready) {
          if (this.window && this.receiving) this.window.resnapshots++;
        } else connection.awaitingSnapshots--;
        connection.lastSequence[topic] = sequence;
        if (connection.acknowledged && connection.awaitingSnapshots <= 0) becomeReady(now);
        return;
      }
      case MessageKind.Subscriptions:
        connection.acknowledged = true;
        if (connection.awaitingSnapshots <= 0) becomeReady(now);
        return;
      case MessageKind.Error:
        increment(this.errors, errorCode(chunk, start, end));
        return;
      default:
        return;
    }
  }

  private onUpdate(
    connection: Connection,
    chunk: Buffer,
    typeAt: number,
    end: number,
    length: number,
    now: number,
  ): void {
    const topic = this.topics.ofUpdate(chunk, typeAt, end);
    const { fields } = this;
    if (topic < 0 || !readUpdate(chunk, typeAt, end, fields)) return;
    const { sequence, timeEpochMs } = fields;
    if (sequence > this.highestSeen[topic]!) this.highestSeen[topic] = sequence;
    const last = connection.lastSequence[topic]!;
    let missing = 0;
    let stale = false;
    let beforeSnapshot = false;
    if (last < 0) {
      if (this.config.expectSnapshot) beforeSnapshot = true;
      else connection.lastSequence[topic] = sequence;
    } else if (sequence <= last) stale = true;
    else {
      missing = sequence - last - 1;
      connection.lastSequence[topic] = sequence;
    }
    const window = this.window;
    if (!window) return;
    const latencyMs = now - timeEpochMs;
    if (this.receiving) {
      window.delivered++;
      window.bytes += length;
      window.recordLatency(latencyMs > 0 ? Math.round(latencyMs * 1000) : 0);
      if (missing > 0) {
        window.gaps++;
        window.missingSequences += missing;
      }
      if (stale) window.staleUpdates++;
      if (beforeSnapshot) window.updatesBeforeSnapshot++;
    }
    const { fromEpochMs, toEpochMs, onScheduleMs } = window.command;
    if (timeEpochMs >= toEpochMs) return;
    if (sequence > window.sequenceAtTo[topic]!) window.sequenceAtTo[topic] = sequence;
    if (timeEpochMs < fromEpochMs) {
      if (sequence > window.sequenceAtFrom[topic]!) window.sequenceAtFrom[topic] = sequence;
      return;
    }
    // One count per connection: duplicates are not deliveries.
    if (stale) return;
    window.scheduledInWindow++;
    if (latencyMs <= onScheduleMs) window.onSchedule++;
  }
}

function send(message: ClientToParent, then?: () => void): void {
  process.send!(message, undefined, {}, () => then?.());
}

function main(): void {
  let client: FanoutLoadClient | undefined;
  process.on('disconnect', () => process.exit(1));
  process.on('message', (message: ParentToClient) => {
    switch (message.kind) {
      case 'start':
        client = new FanoutLoadClient(message.config);
        return;
      case 'connect':
        void client?.connect(message).then((report) => send({ kind: 'connected', report }));
        return;
      case 'measure':
        client?.measure(message, (report) => send({ kind: 'report', report }));
        return;
      case 'stop':
        client?.closeAll();
        process.exit(0);
    }
  });
}

if (process.send) main();
else {
  process.stderr.write('a benchmark child process: start it with FanoutClient (bench/fanout).\n');
  process.exitCode = 2;
}
