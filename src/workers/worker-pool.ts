import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { PublicationSink } from '../hub/hub.js';
import type { SharedCounterTable } from '../limits/shared-counters.js';
import { type Channel, topicOf } from '../market/types.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { freePort } from '../server/free-port.js';
import type { HttpQuery, HttpReply } from '../server/http-routes.js';
import type { ConnectGate, TransportOptions } from '../server/transport.js';
import {
  BatchEncoder,
  CONTROL,
  type MainToWorker,
  type WorkerFault,
  type WorkerStartData,
  type WorkerStartupFault,
  type WorkerToMain,
} from './protocol.js';
import { stopStuckWorker } from './stuck-worker.js';

export interface WorkerPoolOptions {
  readonly threads: number;
  readonly transport: TransportOptions;
  readonly productIds: readonly string[];
  readonly logLevel: string;
  /** A worker whose event loop has not ticked for this long is declared stuck and replaced. */
  readonly stallMs: number;
  /** Test hook, in-process only: the first incarnation of this worker fails to start. */
  readonly startupFault?: { readonly worker: number; readonly fault: WorkerStartupFault };
}

/** What the pool needs from the main thread's market (the hub), all synchronous. */
export interface PoolMarket {
  initialMessages(channel: Channel, productId: string): readonly string[];
  http(query: HttpQuery): HttpReply;
  /** The connect gate, kept on the main thread so it holds for the whole process. */
  readonly gate: ConnectGate;
}

interface Slot {
  worker: Worker;
  /** Client IPs of the connections this worker holds through the gate, released if it dies. */
  readonly admitted: Map<string, number>;
  /** Topics this worker has subscribers on, with the latest grant it was given for each. */
  readonly grants: Map<string, number>;
  /** Ids of the metrics collections awaiting its answer, ended without it if it exits. */
  readonly collecting: Set<number>;
  listening: boolean;
  /** Its loop is stuck: it gets no batches and is being (or could not be) replaced. */
  stalled: boolean;
  lastTick: number;
  lastTickAt: number;
}

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

const COLLECT_TIMEOUT_MS = 1_000;
const STALL_CHECK_MS = 250;
/** How long a stuck worker gets to be stopped through the inspector before it is left alone (stuck in native code). */
const STUCK_STOP_TIMEOUT_MS = 2_000;

/**
 * The main thread's side of the worker pool: starts WS_WORKER_THREADS uWS workers on one port,
 * fans every publication out to each of them in one batch per event-loop turn, answers their
 * requests from the hub, aggregates their metrics, and replaces a worker that dies or gets stuck.
 */
export class WorkerPool implements PublicationSink {
  private readonly slots: Slot[] = [];
  private readonly batch = new BatchEncoder();
  private readonly liveness: Int32Array;
  private readonly inflight: Int32Array;
  private readonly control: Int32Array;
  private readonly collections = new Map<number, (json: MetricsJson | undefined) => void>();
  /** Topic → how many workers hold a grant for it: the topics worth building messages for. */
  private readonly topicHolders = new Map<string, number>();
  private lastGrant = 0;
  private flushScheduled = false;
  private port = 0;
  /** Until start() settles: a worker that ends before listening fails the start instead of being replaced. */
  private starting = false;
  private stopping = false;
  /** The accept guard has the listen sockets closed; a replacement worker closes its own once listening. */
  private listenPaused = false;
  private nextCollection = 0;
  private watchdog: NodeJS.Timeout | undefined;
  /** Test hook callbacks, run when the replacement for a worker index listens. */
  private readonly replacements = new Map<number, () => void>();

  constructor(
    private readonly options: WorkerPoolOptions,
    private readonly market: PoolMarket,
    private readonly admission: SharedCounterTable,
    private readonly metrics: GatewayMetrics,
    private readonly logger: Logger,
  ) {
    this.liveness = new Int32Array(new SharedArrayBuffer(4 * options.threads));
    this.inflight = new Int32Array(new SharedArrayBuffer(4 * options.threads));
    this.control = new Int32Array(new SharedArrayBuffer(4 * CONTROL.length));
    Atomics.store(this.control, CONTROL.healthy, 1);
    metrics.addQueueSource(() => this.queuedMessages());
  }

  /**
   * Starts every worker listening on the one port (uSockets sets SO_REUSEPORT on a non-zero port).
   * Settles either way: if a worker cannot listen or ends before it does, the workers already
   * started are closed (a process that exits while one holds uWS handles aborts natively) and the
   * start rejects with the reason.
   */
  async start(): Promise<number> {
    // uSockets sets SO_REUSEPORT only when given a port, so PORT=0 is resolved to a free port first.
    this.port = this.options.transport.port || (await freePort(this.options.transport.host));
    this.starting = true;
    try {
      for (let i = 0; i < this.options.threads; i++) {
        const fault = this.options.startupFault?.worker === i ? this.options.startupFault.fault : undefined;
        await this.spawn(i, this.port, fault);
      }
    } catch (error) {
      await this.close();
      throw error;
    } finally {
      this.starting = false;
    }
    this.watchdog = setInterval(() => this.checkLiveness(), STALL_CHECK_MS);
    this.watchdog.unref();
    return this.port;
  }

  /** Publications waiting for this turn's batch plus those handed to workers and not yet published. */
  queuedMessages(): number {
    let total = this.batch.size;
    for (let i = 0; i < this.options.threads; i++) total += Atomics.load(this.inflight, i);
    return total;
  }

  /** Whether some worker has subscribers on the topic (or has just been sent their first messages). */
  hasSubscribers(topic: string): boolean {
    return this.topicHolders.has(topic);
  }

  publish(topic: string, channel: Channel, payload: string, receivedAtEpochMs: number): void {
    this.batch.add(topic, channel, payload, receivedAtEpochMs);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Hands the pending batch to every worker: one postMessage per worker per turn. */
  flush(): void {
    this.flushScheduled = false;
    if (this.batch.size === 0) return;
    const { data, count } = this.batch.take();
    const message: MainToWorker = { kind: 'batch', data, count };
    for (const [index, slot] of this.slots.entries()) {
      if (!slot.listening || slot.stalled) continue;
      Atomics.add(this.inflight, index, count);
      slot.worker.postMessage(message);
    }
  }

  /** Process-wide metrics: every live worker's registry plus the main thread's, summed. */
  async metricsText(): Promise<HttpReply> {
    const own = await this.metrics.registry.getMetricsAsJSON();
    const fromWorkers = await Promise.all(this.slots.map((slot) => this.collect(slot)));
    const registry = AggregatorRegistry.aggregate([own, ...fromWorkers.filter((m) => m !== undefined)]);
    return { status: 200, body: await registry.metrics(), contentType: registry.contentType };
  }

  /** Liveness of the whole process: false while a worker is stuck (what /healthz reports on every thread). */
  healthy(): boolean {
    return Atomics.load(this.control, CONTROL.healthy) === 1;
  }

  /** The accept guard: every worker closes its listen socket (connections stay). */
  pauseListening(): void {
    this.listenPaused = true;
    this.postToListening({ kind: 'pause-listening' });
  }

  resumeListening(): void {
    this.listenPaused = false;
    this.postToListening({ kind: 'resume-listening' });
  }

  private postToListening(message: MainToWorker): void {
    for (const slot of this.slots) if (slot.listening && !slot.stalled) slot.worker.postMessage(message);
  }

  /** Drains every worker (1001 to its clients, spread over `spreadMs`) and waits for the threads to end. */
  async drain(spreadMs: number): Promise<void> {
    await this.stopAll({ kind: 'drain', spreadMs });
  }

  /** Closes every worker's app at once and waits for the threads to end. */
  async close(): Promise<void> {
    await this.stopAll({ kind: 'close' });
  }

  /**
   * Synchronous last resort for the shutdown deadline and a second signal, which exit right after:
   * asks every worker to close its uWS app and blocks until they have (or `waitMs` passes), because
   * a process that exits while a worker holds uWS handles aborts natively.
   */
  closeNow(waitMs = 2_000): void {
    this.stopping = true;
    clearInterval(this.watchdog);
    const closedBefore = Atomics.load(this.control, CONTROL.closed);
    const live = this.slots.filter((slot) => !slot.stalled);
    for (const slot of live) slot.worker.postMessage({ kind: 'close' } satisfies MainToWorker);
    const deadline = performance.now() + waitMs;
    for (;;) {
      const closed = Atomics.load(this.control, CONTROL.closed);
      const left = deadline - performance.now();
      if (closed - closedBefore >= live.length || left <= 0) return;
      Atomics.wait(this.control, CONTROL.closed, closed, left);
    }
  }

  /**
   * Test hook (in-process only): makes worker `index` fail as an uncaught exception would
   * ('crash') or spin its event loop forever ('hang'). Resolves with the milliseconds from the
   * thread's end to its replacement listening.
   */
  injectFault(index: number, fault: WorkerFault): Promise<number> {
    const slot = this.slots[index];
    if (!slot) return Promise.reject(new Error(`no worker ${index}`));
    const replaced = new Promise<number>((resolve) => {
      slot.worker.once('exit', () => {
        const diedAt = performance.now();
        this.replacements.set(index, () => resolve(performance.now() - diedAt));
      });
    });
    slot.worker.postMessage({ kind: 'fault', fault } satisfies MainToWorker);
    return replaced;
  }

  private async stopAll(message: MainToWorker): Promise<void> {
    this.stopping = true;
    clearInterval(this.watchdog);
    const exits = this.slots.map(
      (slot) =>
        new Promise<void>((resolve) =>
          slot.worker.threadId < 0 ? resolve() : slot.worker.once('exit', () => resolve()),
        ),
    );
    for (const slot of this.slots) if (!slot.stalled) slot.worker.postMessage(message);
    await Promise.all(exits);
  }

  private spawn(index: number, port: number, startupFault?: WorkerStartupFault): Promise<number> {
    const start: WorkerStartData = {
      ...(startupFault ? { startupFault } : {}),
      index,
      transport: this.options.transport,
      productIds: this.options.productIds,
      logLevel: this.options.logLevel,
      liveness: this.liveness.buffer as SharedArrayBuffer,
      inflight: this.inflight.buffer as SharedArrayBuffer,
      control: this.control.buffer as SharedArrayBuffer,
      admission: {
        buffer: this.admission.buffer,
        capacity: this.admission.capacity,
        columns: this.admission.columns,
      },
    };
    const worker = new Worker(new URL('./worker-thread.js', import.meta.url), {
      workerData: start,
      execArgv: workerExecArgv(),
    });
    const slot: Slot = {
      worker,
      admitted: new Map(),
      grants: new Map(),
      collecting: new Set(),
      listening: false,
      stalled: false,
      lastTick: 0,
      lastTickAt: performance.now(),
    };
    this.slots[index] = slot;
    Atomics.store(this.inflight, index, 0);
    // Why the thread ended, if it said (an uncaught error it caught itself) or Node did ('error').
    let failure: string | undefined;
    worker.on('message', (message: WorkerToMain) => {
      if (message.kind === 'failed') failure = message.error;
      else this.onMessage(slot, message);
    });
    worker.on('error', (error) => {
      failure = String(error);
      this.logger.error({ err: error, worker: index }, 'worker error');
    });
    return new Promise((resolve, reject) => {
      const settle = () => {
        worker.off('message', onListening);
        worker.off('exit', onEarlyExit);
      };
      const onListening = (message: WorkerToMain) => {
        if (message.kind === 'listening') {
          slot.listening = true;
          if (this.listenPaused) worker.postMessage({ kind: 'pause-listening' } satisfies MainToWorker);
          resolve(message.port);
        } else if (message.kind === 'listen-failed') {
          reject(new Error(`worker ${index}: ${message.error}`));
        } else {
          return;
        }
        settle();
      };
      // Registered before onExit, so the start learns of the failure before any replacement is made.
      const onEarlyExit = (code: number) => {
        settle();
        const why = failure ? `: ${failure}` : '';
        reject(new Error(`worker ${index} exited (code ${code}) before listening${why}`));
      };
      worker.on('message', onListening);
      worker.once('exit', onEarlyExit);
      worker.on('exit', (code) => this.onExit(index, slot, code));
      worker.once('online', () => worker.postMessage({ kind: 'listen', port } satisfies MainToWorker));
    });
  }

  private onExit(index: number, slot: Slot, code: number): void {
    Atomics.store(this.inflight, index, 0);
    // Its connections are gone: so are their per-IP and total counts, here and in the gate.
    this.admission.clearColumn(index + 1);
    for (const [clientIp, count] of slot.admitted)
      for (let i = 0; i < count; i++) this.market.gate.release(clientIp);
    slot.admitted.clear();
    for (const id of [...slot.collecting]) this.collections.get(id)?.(undefined);
    for (const topic of [...slot.grants.keys()]) this.releaseTopic(slot, topic);
    if (this.stopping || this.slots[index] !== slot || (this.starting && !slot.listening)) return;
    if (!slot.stalled) {
      this.logger.error(
        { worker: index, exitCode: code },
        'websocket worker thread died; its clients were disconnected; replacing it',
      );
      this.metrics.workerRestartsTotal.labels('died').inc();
    }
    this.spawn(index, this.port).then(
      () => {
        this.logger.info({ worker: index, port: this.port }, 'replacement websocket worker listening');
        if (this.slots.every((other) => !other.stalled)) Atomics.store(this.control, CONTROL.healthy, 1);
        this.replacements.get(index)?.();
        this.replacements.delete(index);
      },
      (error: unknown) =>
        this.logger.error({ err: error, worker: index }, 'replacement websocket worker failed to listen'),
    );
  }

  private onMessage(slot: Slot, message: WorkerToMain): void {
    switch (message.kind) {
      case 'initial': {
        // Everything published before this point must reach the worker before the snapshot does,
        // and nothing after it: flush, then answer on the same ordered channel. From here on the
        // topic's messages must be built for this worker: the grant is registered with the answer.
        this.flush();
        const topic = topicOf(message.channel, message.productId);
        if (!slot.grants.has(topic)) this.topicHolders.set(topic, (this.topicHolders.get(topic) ?? 0) + 1);
        const grant = ++this.lastGrant;
        slot.grants.set(topic, grant);
        slot.worker.postMessage({
          kind: 'initial',
          id: message.id,
          messages: this.market.initialMessages(message.channel, message.productId),
          grant,
        } satisfies MainToWorker);
        return;
      }
      case 'topic-unused':
        if (slot.grants.get(message.topic) === message.grant) this.releaseTopic(slot, message.topic);
        return;
      case 'http':
        slot.worker.postMessage({
          kind: 'reply',
          id: message.id,
          reply: this.market.http(message.query),
        } satisfies MainToWorker);
        return;
      case 'metrics':
        void this.metricsText().then(
          (reply) => slot.worker.postMessage({ kind: 'reply', id: message.id, reply } satisfies MainToWorker),
          (error: unknown) => {
            this.logger.error({ err: error }, 'metrics aggregation failed');
            const reply: HttpReply = { status: 503, body: '{"message":"metrics unavailable"}' };
            slot.worker.postMessage({ kind: 'reply', id: message.id, reply } satisfies MainToWorker);
          },
        );
        return;
      case 'admit':
        void this.market.gate.admit(message.clientIp).then((decision) => {
          if (decision.allowed)
            slot.admitted.set(message.clientIp, (slot.admitted.get(message.clientIp) ?? 0) + 1);
          slot.worker.postMessage({ kind: 'admitted', id: message.id, decision } satisfies MainToWorker);
        });
        return;
      case 'release': {
        const count = slot.admitted.get(message.clientIp) ?? 0;
        if (count <= 1) slot.admitted.delete(message.clientIp);
        else slot.admitted.set(message.clientIp, count - 1);
        this.market.gate.release(message.clientIp);
        return;
      }
      case 'collected':
        this.collections.get(message.id)?.(message.metrics as MetricsJson);
        return;
      case 'listening':
      case 'listen-failed':
        return;
    }
  }

  private releaseTopic(slot: Slot, topic: string): void {
    slot.grants.delete(topic);
    const holders = (this.topicHolders.get(topic) ?? 1) - 1;
    if (holders > 0) this.topicHolders.set(topic, holders);
    else this.topicHolders.delete(topic);
  }

  /** A worker's registry, or undefined if it does not answer in time (dying, stuck): a scrape always answers. */
  private collect(slot: Slot): Promise<MetricsJson | undefined> {
    if (!slot.listening || slot.stalled) return Promise.resolve(undefined);
    const id = ++this.nextCollection;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(undefined), COLLECT_TIMEOUT_MS);
      const finish = (json: MetricsJson | undefined) => {
        clearTimeout(timer);
        slot.collecting.delete(id);
        this.collections.delete(id);
        resolve(json);
      };
      this.collections.set(id, finish);
      slot.collecting.add(id);
      slot.worker.postMessage({ kind: 'collect', id } satisfies MainToWorker);
    });
  }

  /**
   * A worker whose loop is stuck is isolated at once (no more batches, so no unbounded queue),
   * /healthz fails until it is replaced, and its app is closed through the inspector so that the
   * thread can end and be replaced (see stuck-worker.ts).
   */
  private checkLiveness(): void {
    const now = performance.now();
    for (const [index, slot] of this.slots.entries()) {
      const tick = Atomics.load(this.liveness, index);
      if (tick !== slot.lastTick) {
        slot.lastTick = tick;
        slot.lastTickAt = now;
        continue;
      }
      if (!slot.listening || slot.stalled || now - slot.lastTickAt < this.options.stallMs) continue;
      slot.stalled = true;
      Atomics.store(this.control, CONTROL.healthy, 0);
      this.metrics.workerRestartsTotal.labels('stalled').inc();
      this.logger.fatal(
        { worker: index, stalledMs: Math.round(now - slot.lastTickAt) },
        'websocket worker thread is stuck; closing its connections and replacing it',
      );
      void this.replaceStuck(index, slot);
    }
  }

  private async replaceStuck(index: number, slot: Slot): Promise<void> {
    const stopped = await stopStuckWorker(slot.worker, STUCK_STOP_TIMEOUT_MS).catch((error: unknown) => {
      this.logger.error({ err: error, worker: index }, 'could not reach the stuck worker');
      return false;
    });
    // Once it has exited, onExit replaces it. Otherwise terminating it would abort the process:
    // /healthz keeps failing for the orchestrator to restart the pod.
    if (!stopped)
      this.logger.fatal(
        { worker: index },
        'stuck websocket worker did not answer; it cannot be replaced in-process',
      );
  }
}

/**
 * The process's own options minus V8 heap sizes (process-wide already, and refused by Worker), plus
 * --no-force-async-hooks-checks: ending a stuck callback (stuck-worker.ts) leaves the thread's
 * async-hooks stack unbalanced, which that check would turn into a process abort.
 */
function workerExecArgv(): string[] {
  const processWide = /^--(max|min)-(semi|old)-space-size(=|$)/;
  return [...process.execArgv.filter((arg) => !processWide.test(arg)), '--no-force-async-hooks-checks'];
}
