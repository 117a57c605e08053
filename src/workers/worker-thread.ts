import { parentPort, workerData } from 'node:worker_threads';
import { ConnectionAdmission } from '../limits/admission.js';
import { SharedCounterTable } from '../limits/shared-counters.js';
import { createLogger } from '../logging/logger.js';
import { topicOf } from '../market/types.js';
import { createMetrics } from '../metrics/metrics.js';
import type { HttpReply } from '../server/http-routes.js';
import { type GateDecision, type MarketAccess, Transport } from '../server/transport.js';
import { nativeUws } from '../server/uws.js';
import {
  CLOSE_STUCK_APP,
  CONTROL,
  decodeBatch,
  type MainToWorker,
  type WorkerStartData,
  type WorkerToMain,
} from './protocol.js';

/**
 * A worker thread: one uWS app on the shared port, serving its share of the connections. The
 * market lives on the main thread; this thread publishes the batches it receives and asks the
 * main thread for initial messages, REST answers and the process-wide metrics.
 */

const port = parentPort!;
const start = workerData as WorkerStartData;
const logger = createLogger(start.logLevel, { worker: start.index });
const metrics = createMetrics({ processMetrics: false });
const liveness = new Int32Array(start.liveness);
const inflight = new Int32Array(start.inflight);
const control = new Int32Array(start.control);
const products = new Set(start.productIds);
const workerLabel = metrics.workerConnections.labels(String(start.index));

let nextId = 0;
const pendingInitial = new Map<
  number,
  { readonly topic: string; readonly deliver: (messages: readonly string[]) => void }
>();
/** Topics the main thread publishes to this worker, with the latest grant received for each. */
const granted = new Map<string, number>();
const pendingReplies = new Map<number, (reply: HttpReply) => void>();
const pendingAdmissions = new Map<number, (decision: GateDecision) => void>();

function post(message: WorkerToMain): void {
  port.postMessage(message);
}

function ask(message: (id: number) => WorkerToMain): Promise<HttpReply> {
  const id = ++nextId;
  return new Promise((resolve) => {
    pendingReplies.set(id, resolve);
    post(message(id));
  });
}

const market: MarketAccess = {
  hasProduct: (productId) => products.has(productId),
  requestInitial(channel, productId, deliver) {
    const id = ++nextId;
    pendingInitial.set(id, { topic: topicOf(channel, productId), deliver });
    post({ kind: 'initial', id, channel, productId });
  },
  http: (query) => ask((id) => ({ kind: 'http', id, query })),
  metrics: () => ask((id) => ({ kind: 'metrics', id })),
};

const transport = new Transport(start.transport, {
  uws: nativeUws(),
  market,
  metrics,
  logger,
  healthy: () => Atomics.load(control, CONTROL.healthy) === 1,
  admission: new ConnectionAdmission(
    SharedCounterTable.attach(start.admission.buffer, start.admission.capacity, start.admission.columns),
    start.index + 1,
    start.transport.limits.maxConnections,
    start.transport.limits.maxConnectionsPerIp,
  ),
  gate: {
    admit: (clientIp) =>
      new Promise((resolve) => {
        const id = ++nextId;
        pendingAdmissions.set(id, resolve);
        post({ kind: 'admit', id, clientIp });
      }),
    release: (clientIp) => post({ kind: 'release', clientIp }),
  },
});

// The main thread watches this tick: a worker whose event loop is stuck stops bumping it.
const livenessTimer = setInterval(() => Atomics.add(liveness, start.index, 1), 100);

const connectionsTimer = setInterval(() => {
  workerLabel.set(transport.connectionCount);
}, 1_000);

// Topics nobody here is on any more are given back, so the hub stops building their messages.
const TOPIC_SWEEP_MS = 1_000;
const topicSweepTimer = setInterval(() => {
  for (const [topic, grant] of granted) {
    if (transport.hasSubscribers(topic)) continue;
    granted.delete(topic);
    post({ kind: 'topic-unused', topic, grant });
  }
}, TOPIC_SWEEP_MS);

/** Closes the uWS app before the thread ends: a thread that ends with uWS handles open aborts the process. */
function finish(code: number): never {
  clearInterval(livenessTimer);
  clearInterval(connectionsTimer);
  clearInterval(topicSweepTimer);
  transport.close();
  Atomics.add(control, CONTROL.closed, 1);
  Atomics.notify(control, CONTROL.closed);
  process.exit(code);
}

// Called through the inspector by the main thread when this thread's loop is stuck (it cannot read
// a 'close' message then): see stuck-worker.ts.
Object.defineProperty(globalThis, Symbol.for(CLOSE_STUCK_APP), {
  value: () => {
    logger.error('websocket worker event loop stuck: closing its connections and ending the thread');
    clearInterval(livenessTimer);
    clearInterval(connectionsTimer);
    transport.close();
    // Runs once the main thread has ended the stuck callback, so uWS has freed the closed sockets.
    setTimeout(() => process.exit(1), 0);
    return true;
  },
});

process.on('uncaughtException', (error) => {
  logger.error({ err: error }, 'websocket worker failed; closing its connections');
  post({ kind: 'failed', error: String(error) });
  finish(1);
});
process.on('unhandledRejection', (error) => {
  logger.error({ err: error }, 'websocket worker failed (unhandled rejection); closing its connections');
  post({ kind: 'failed', error: String(error) });
  finish(1);
});

port.on('message', (message: MainToWorker) => {
  switch (message.kind) {
    case 'batch':
      decodeBatch(message.data, (topic, channel, payload, receivedAt) =>
        transport.publish(topic, channel, payload, receivedAt),
      );
      Atomics.sub(inflight, start.index, message.count);
      return;
    case 'initial': {
      const pending = pendingInitial.get(message.id);
      pendingInitial.delete(message.id);
      if (!pending) return;
      granted.set(pending.topic, message.grant);
      pending.deliver(message.messages);
      return;
    }
    case 'reply': {
      const resolve = pendingReplies.get(message.id);
      pendingReplies.delete(message.id);
      resolve?.(message.reply);
      return;
    }
    case 'admitted': {
      const resolve = pendingAdmissions.get(message.id);
      pendingAdmissions.delete(message.id);
      resolve?.(message.decision);
      return;
    }
    case 'collect':
      workerLabel.set(transport.connectionCount);
      void metrics.registry
        .getMetricsAsJSON()
        .then((json) => post({ kind: 'collected', id: message.id, metrics: json }));
      return;
    case 'listen':
      if (start.startupFault === 'exit') {
        setImmediate(() => {
          throw new Error('injected startup fault (test hook)');
        });
        return;
      }
      if (start.startupFault === 'listen-failed') {
        post({ kind: 'listen-failed', error: 'injected startup fault (test hook)' });
        return;
      }
      transport.listen(message.port).then(
        (bound) => post({ kind: 'listening', port: bound }),
        (error: Error) => post({ kind: 'listen-failed', error: error.message }),
      );
      return;
    case 'pause-listening':
      transport.pauseListening();
      return;
    case 'resume-listening':
      transport.resumeListening();
      return;
    case 'drain':
      void transport.drain(message.spreadMs).then(() => finish(0));
      return;
    case 'close':
      finish(0);
      return;
    case 'fault':
      setImmediate(() => {
        if (message.fault === 'crash') throw new Error('injected worker fault (test hook)');
        for (;;) {
          // Spins until the main thread closes the app through the inspector and terminates the thread.
        }
      });
      return;
  }
});
