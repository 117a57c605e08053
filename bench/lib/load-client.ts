/**
 * A load-client process: opens N WebSocket connections to the gateway, subscribes them, and
 * counts what they receive. Started by LoadClientHandle (child_process.fork of the compiled
 * dist/bench/lib/load-client.js) and driven over IPC: see load-protocol.ts.
 *
 * Per connection it checks level2 continuity (each l2update's sequence is one more than the last
 * for its product, after that product's snapshot) and records the latency now - time of every
 * l2update, match and ticker. "now" is performance.timeOrigin + performance.now(), the same clock
 * the gateway stamps `time` with, on the same machine.
 *
 * The hot path avoids JSON.parse: the gateway writes every message as JSON.stringify of an object
 * whose first key is "type", and the fields read here (product_id, sequence, time) are keys whose
 * needles cannot occur inside the other values (prices, sizes, uuids, ids). A message that does not
 * start with {"type":" falls back to JSON.parse. If the wire format changes, revisit readers below.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { LogLinearHistogram } from './histogram.js';
import type {
  ChildToParent,
  ConnectionGroup,
  GroupReport,
  LoadClientConfig,
  LoadReport,
  ParentToChild,
} from './load-protocol.js';

const TYPE_PREFIX = '{"type":"';
const PRODUCT_NEEDLE = '"product_id":"';
const TIME_NEEDLE = '"time":"';
const SEQUENCE_NEEDLE = '"sequence":';
const ERROR_CODE_NEEDLE = '"code":"';
const LATENCY_TYPES: ReadonlySet<string> = new Set(['l2update', 'match', 'ticker']);
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Counters of one group of connections; reset when the measurement window starts. */
class GroupStats {
  connections = 0;
  messages = 0;
  bytes = 0;
  readonly byType = new Map<string, number>();
  gaps = 0;
  missingSequences = 0;
  staleUpdates = 0;
  updatesBeforeSnapshot = 0;
  resnapshots = 0;
  latency = new LogLinearHistogram();
  readonly latencyByType = new Map<string, LogLinearHistogram>();
  readonly latencyBySecond: LogLinearHistogram[] = [];
  /** Lifetime: not reset with the window. */
  readonly closes = new Map<number, number>();
  readonly errors = new Map<string, number>();

  resetWindow(): void {
    this.messages = 0;
    this.bytes = 0;
    this.byType.clear();
    this.gaps = 0;
    this.missingSequences = 0;
    this.staleUpdates = 0;
    this.updatesBeforeSnapshot = 0;
    this.resnapshots = 0;
    this.latency = new LogLinearHistogram();
    this.latencyByType.clear();
    this.latencyBySecond.length = 0;
  }

  /** `second`: whole seconds since the window started (negative during the warm-up: not kept by second). */
  recordLatency(type: string, ms: number, second: number): void {
    this.latency.recordMs(ms);
    let byType = this.latencyByType.get(type);
    if (!byType) {
      byType = new LogLinearHistogram();
      this.latencyByType.set(type, byType);
    }
    byType.recordMs(ms);
    if (second < 0) return;
    while (this.latencyBySecond.length <= second) this.latencyBySecond.push(new LogLinearHistogram());
    this.latencyBySecond[second]!.recordMs(ms);
  }

  report(): GroupReport {
    return {
      connections: this.connections,
      messages: this.messages,
      bytes: this.bytes,
      byType: Object.fromEntries(this.byType),
      gaps: this.gaps,
      missingSequences: this.missingSequences,
      staleUpdates: this.staleUpdates,
      updatesBeforeSnapshot: this.updatesBeforeSnapshot,
      resnapshots: this.resnapshots,
      latency: this.latency.toJson(),
      latencyByType: Object.fromEntries([...this.latencyByType].map(([type, h]) => [type, h.toJson()])),
      latencyBySecond: this.latencyBySecond.map((h) => h.toJson()),
      closes: Object.fromEntries(this.closes),
      errors: Object.fromEntries(this.errors),
    };
  }
}

interface Connection {
  readonly ws: WebSocket;
  readonly group: ConnectionGroup;
  readonly stats: GroupStats;
  /** level2: last sequence applied per product (set by its snapshot). */
  readonly lastSequence: Map<string, number>;
  /** Products whose first snapshot has not arrived yet (level2 only); empty + subscribed = ready. */
  readonly awaitingSnapshot: Set<string>;
  subscribed: boolean;
}

const increment = <K>(map: Map<K, number>, key: K, by = 1) => map.set(key, (map.get(key) ?? 0) + by);

function stringField(text: string, needle: string): string | undefined {
  const at = text.indexOf(needle);
  if (at < 0) return undefined;
  const from = at + needle.length;
  const end = text.indexOf('"', from);
  return end < 0 ? undefined : text.slice(from, end);
}

function integerField(text: string, needle: string): number | undefined {
  const at = text.indexOf(needle);
  if (at < 0) return undefined;
  let value = 0;
  let i = at + needle.length;
  for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) value = value * 10 + c - 48;
  return i === at + needle.length ? undefined : value;
}

function messageType(text: string): string {
  if (text.startsWith(TYPE_PREFIX))
    return text.slice(TYPE_PREFIX.length, text.indexOf('"', TYPE_PREFIX.length));
  try {
    const parsed: unknown = JSON.parse(text);
    const type = (parsed as { type?: unknown } | null)?.type;
    return typeof type === 'string' ? type : 'unknown';
  } catch {
    return 'invalid_json';
  }
}

/** Date.parse keeps milliseconds only; the gateway writes microseconds, so the rest is added back. */
let cachedTime = '';
let cachedEpochMs = 0;
function isoToEpochMs(time: string): number {
  if (time === cachedTime) return cachedEpochMs;
  let ms = Date.parse(time);
  const dot = time.indexOf('.', 19);
  if (dot > 0 && time.length - 1 > dot + 4) ms += Number(`0.${time.slice(dot + 4, time.length - 1)}`);
  cachedTime = time;
  cachedEpochMs = ms;
  return ms;
}

/** With the default binaryType ('nodebuffer') ws always hands a single Buffer. */
function asBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

class LoadClient {
  private readonly connections: Connection[] = [];
  private readonly groups: Record<ConnectionGroup, GroupStats> = {
    fast: new GroupStats(),
    stalled: new GroupStats(),
  };
  private readonly tracksLevel2: boolean;
  private connectFailures = 0;
  private lastConnectError: string | undefined;
  /** Set by measure() (until then latencies are not kept by second). */
  private windowStart = Number.POSITIVE_INFINITY;
  /** Set by measure(); the first message or timer past it ends the window. */
  private windowEnd = Number.POSITIVE_INFINITY;
  private windowTimer: NodeJS.Timeout | undefined;
  private finished = false;
  private onReport: (report: LoadReport) => void = () => {};
  private eluStart = performance.eventLoopUtilization();
  private cpuStart = process.cpuUsage();

  constructor(private readonly config: LoadClientConfig) {
    this.tracksLevel2 = config.channels.includes('level2');
  }

  /**
   * Opens the fast connections, a bounded number at a time, and waits until each is subscribed and
   * has its snapshots, or until readyTimeoutMs has passed since the start (then readyMessage says
   * what is missing).
   */
  async connectFast(): Promise<void> {
    const deadline = performance.now() + this.config.readyTimeoutMs;
    let opening = true;
    void this.openMany(this.fastCount, 'fast').then(() => {
      opening = false;
    });
    while ((opening || this.readyCount() < this.fastCount) && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  readyMessage(): ChildToParent {
    const connected = this.readyCount();
    const failed = this.fastCount - connected;
    if (failed === 0) return { kind: 'ready', connected, failed };
    const opened = this.connections.length;
    const subscribed = this.connections.filter((c) => c.subscribed).length;
    const error =
      `${failed} of ${this.fastCount} connections not ready within ${this.config.readyTimeoutMs} ms: ` +
      `${opened} opened, ${subscribed} subscribed, ${connected} with every snapshot, ` +
      `${this.connectFailures} failed to connect${this.lastConnectError ? ` (${this.lastConnectError})` : ''}, ` +
      `closes ${JSON.stringify(Object.fromEntries(this.groups.fast.closes))}, ` +
      `errors ${JSON.stringify(Object.fromEntries(this.groups.fast.errors))}`;
    return { kind: 'ready', connected, failed, error };
  }

  /**
   * Starts a window of `durationMs`, and the stalled connections: they connect, subscribe and stop
   * reading at once, as a stuck client does. (Opened only now, so that they cost the process nothing
   * during the warm-up, when reading their share would slow the fast connections down.)
   *
   * The window ends by itself, on the first message (or timer) past its end: a saturated client may
   * handle parent messages seconds late (one event-loop turn can read megabytes of backlog), so a
   * 'stop' from the parent cannot end it on time. At its end every socket is paused, which also
   * stops the backlog, and `onReport` gets the figures. A 'stop' before then ends it early.
   */
  measure(durationMs: number, onReport: (report: LoadReport) => void): void {
    for (const stats of Object.values(this.groups)) stats.resetWindow();
    this.windowStart = performance.now();
    this.windowEnd = this.windowStart + durationMs;
    this.eluStart = performance.eventLoopUtilization();
    this.cpuStart = process.cpuUsage();
    this.onReport = onReport;
    this.windowTimer = setTimeout(() => this.finish(), durationMs);
    void this.openMany(this.config.stalled, 'stalled');
  }

  /** Ends the window if it is open and returns its figures; undefined if none is open. */
  endWindow(): LoadReport | undefined {
    if (this.finished || this.windowEnd === Number.POSITIVE_INFINITY) return undefined;
    this.finished = true;
    clearTimeout(this.windowTimer);
    for (const connection of this.connections) connection.ws.pause();
    const windowMs = performance.now() - this.windowStart;
    const cpu = process.cpuUsage(this.cpuStart);
    return {
      label: this.config.label,
      windowMs,
      eventLoopUtilization: performance.eventLoopUtilization(this.eluStart).utilization,
      cpuCores: (cpu.user + cpu.system) / 1000 / windowMs,
      groups: { fast: this.groups.fast.report(), stalled: this.groups.stalled.report() },
    };
  }

  /** The window's own end (its duration passed): reports through measure()'s callback. */
  private finish(): void {
    const report = this.endWindow();
    if (report) this.onReport(report);
  }

  closeAll(): void {
    for (const connection of this.connections) connection.ws.terminate();
  }

  private get fastCount(): number {
    return this.config.connections - this.config.stalled;
  }

  private readyCount(): number {
    let ready = 0;
    for (const c of this.connections)
      if (c.group === 'fast' && c.subscribed && c.awaitingSnapshot.size === 0) ready++;
    return ready;
  }

  private async openMany(count: number, group: ConnectionGroup): Promise<void> {
    let opened = 0;
    const opener = async () => {
      while (opened < count) {
        opened++;
        await this.open(group);
      }
    };
    await Promise.all(Array.from({ length: Math.min(count, this.config.connectConcurrency) }, opener));
  }

  private open(group: ConnectionGroup): Promise<void> {
    const ws = new WebSocket(this.config.url, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      // A handshake the server never answers fails instead of holding up 'ready' forever.
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    const stats = this.groups[group];
    let opened = false;
    return new Promise((resolve) => {
      ws.once('open', () => {
        opened = true;
        const connection: Connection = {
          ws,
          group,
          stats,
          lastSequence: new Map(),
          awaitingSnapshot: new Set(this.tracksLevel2 ? this.config.productIds : []),
          subscribed: false,
        };
        this.connections.push(connection);
        stats.connections++;
        ws.on('message', (data) => this.onMessage(connection, asBuffer(data)));
        ws.on('close', (code) => increment(stats.closes, code));
        ws.send(
          JSON.stringify({
            type: 'subscribe',
            product_ids: this.config.productIds,
            channels: this.config.channels,
          }),
        );
        // ws's own pause(): it pauses the TCP socket (_socket.pause()) and, unlike a bare
        // _socket.pause(), also keeps ws from resuming it when its receiver drains.
        if (group === 'stalled') ws.pause();
        resolve();
      });
      ws.on('error', (error) => {
        // After 'open', 'close' follows and is counted there; before it, this is a failed connect.
        if (opened) return;
        this.connectFailures++;
        this.lastConnectError = error.message;
        resolve();
      });
    });
  }

  private onMessage(connection: Connection, data: Buffer): void {
    if (this.finished) return;
    const now = performance.now();
    if (now >= this.windowEnd) {
      this.finish();
      return;
    }
    const { stats } = connection;
    const text = data.toString();
    stats.messages++;
    stats.bytes += data.length;
    const type = messageType(text);
    increment(stats.byType, type);
    switch (type) {
      case 'l2update':
        this.checkSequence(connection, text);
        break;
      case 'snapshot':
        this.applySnapshot(connection, text);
        return;
      case 'subscriptions':
        connection.subscribed = true;
        return;
      case 'error':
        increment(stats.errors, stringField(text, ERROR_CODE_NEEDLE) ?? 'unknown');
        return;
    }
    if (LATENCY_TYPES.has(type)) {
      const time = stringField(text, TIME_NEEDLE);
      if (time !== undefined) {
        const second = Math.floor((now - this.windowStart) / 1000);
        stats.recordLatency(type, performance.timeOrigin + now - isoToEpochMs(time), second);
      }
    }
  }

  private applySnapshot(connection: Connection, text: string): void {
    const product = stringField(text, PRODUCT_NEEDLE);
    const sequence = integerField(text, SEQUENCE_NEEDLE);
    if (product === undefined || sequence === undefined) return;
    if (!connection.awaitingSnapshot.delete(product)) connection.stats.resnapshots++;
    connection.lastSequence.set(product, sequence);
  }

  private checkSequence(connection: Connection, text: string): void {
    const product = stringField(text, PRODUCT_NEEDLE);
    const sequence = integerField(text, SEQUENCE_NEEDLE);
    if (product === undefined || sequence === undefined) return;
    const { stats } = connection;
    const last = connection.lastSequence.get(product);
    if (last === undefined) {
      stats.updatesBeforeSnapshot++;
      return;
    }
    if (sequence <= last) {
      stats.staleUpdates++;
      return;
    }
    if (sequence !== last + 1) {
      stats.gaps++;
      stats.missingSequences += sequence - last - 1;
    }
    connection.lastSequence.set(product, sequence);
  }
}

function send(message: ChildToParent, then?: () => void): void {
  process.send!(message, undefined, {}, () => then?.());
}

function main(): void {
  let client: LoadClient | undefined;
  // The parent went away (crashed, killed): never linger as an orphan holding connections.
  process.on('disconnect', () => process.exit(1));
  process.on('message', (message: ParentToChild) => {
    switch (message.kind) {
      case 'start': {
        const started = new LoadClient(message.config);
        client = started;
        void started.connectFast().then(() => send(started.readyMessage()));
        return;
      }
      case 'measure':
        client?.measure(message.durationMs, (report) => send({ kind: 'report', report }));
        return;
      case 'stop': {
        // A window still open ends now and its report goes out before the process exits.
        const report = client?.endWindow();
        client?.closeAll();
        if (report) send({ kind: 'report', report }, () => process.exit(0));
        else process.exit(0);
        return;
      }
    }
  });
}

if (process.send) main();
else {
  process.stderr.write('load-client is a child process: start it with LoadClientHandle (bench/lib).\n');
  process.exitCode = 2;
}
