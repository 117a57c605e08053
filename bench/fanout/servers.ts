import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { GATEWAY_NODE_OPTIONS } from '../../src/node-options.js';
import { GatewayProcess } from '../lib/gateway-process.js';
import { ONE_IP_LIMITS } from '../lib/scenario.js';
import type { ParentToPeer, PeerConfig, PeerToParent } from '../peers/protocol.js';
import type { PublisherStats } from '../peers/publisher.js';
import type { PeerKind } from './client-protocol.js';

export const PEER_KINDS: readonly PeerKind[] = ['uws', 'ws', 'socketio', 'gateway'];

export const PEER_NAMES: Readonly<Record<PeerKind, string>> = {
  uws: 'raw uWS',
  ws: 'ws',
  socketio: 'Socket.IO',
  gateway: 'gateway',
};

/** The simulator's tick; the peers' publisher uses the same, so both batch a tick's messages alike. */
export const TICK_MS = 10;

/**
 * What feeds the gateway: the peers' open-loop publisher through its FeedSource interface
 * (bench/peers/gateway-server.ts, the default), or its built-in simulator as `npm start` runs it.
 */
export const GATEWAY_FEEDS = ['publisher', 'simulator'] as const;
export type GatewayFeed = (typeof GATEWAY_FEEDS)[number];

export interface ServerOptions {
  readonly topics: readonly string[];
  /** Messages per second per topic (the simulator's events per product for a simulator-fed gateway); 0: idle. */
  readonly ratePerTopic: number;
  readonly seed: number;
  readonly gatewayFeed: GatewayFeed;
  /** Extra gateway environment (e.g. WS_WORKER_THREADS). */
  readonly gatewayEnv?: Readonly<Record<string, string>>;
  /** Write a V8 CPU profile of the server process into this directory when it exits. */
  readonly cpuProfileDir?: string | undefined;
}

/** A server under test, whichever kind: where clients connect and how to read and stop it. */
export interface ServerUnderTest {
  readonly kind: PeerKind;
  readonly pid: number;
  readonly host: string;
  readonly port: number;
  /** Path (and query) of the WebSocket upgrade. */
  readonly path: string;
  readonly socketIo: boolean;
  /** The gateway sends a level2 snapshot per product before its updates. */
  readonly expectSnapshot: boolean;
  /** http://host:port of the gateway's REST side (undefined for the peers). */
  readonly httpUrl: string | undefined;
  /** The publisher's figures for a window of scheduled time (undefined for a simulator-fed gateway). */
  publisherStats(fromEpochMs: number, toEpochMs: number): Promise<PublisherStats | undefined>;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const profileArgs = (dir: string | undefined) => (dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : []);

export async function startServer(kind: PeerKind, options: ServerOptions): Promise<ServerUnderTest> {
  if (kind !== 'gateway') return startPeer(kind, options);
  const env = {
    ...ONE_IP_LIMITS,
    WS_WORKER_THREADS: '0',
    PRODUCTS: options.topics.join(','),
    ...options.gatewayEnv,
  };
  if (options.gatewayFeed === 'simulator') return startSimulatorGateway(options, env);
  return startPeer('gateway', options, { ...env, HOST, PORT: '0', ADMIN_PORT: '0', LOG_LEVEL: 'warn' });
}

/** The gateway as users start it (node dist/src/main.js), fed by its simulator at the given rate. */
async function startSimulatorGateway(
  options: ServerOptions,
  env: Readonly<Record<string, string>>,
): Promise<ServerUnderTest> {
  const gateway = await GatewayProcess.start(
    {
      ...env,
      // The simulator's floor is 0.1 event/s per product: "idle" is nearly silent, not silent.
      SIM_EVENTS_PER_SEC: String(Math.max(0.1, options.ratePerTopic)),
      SIM_SEED: String(options.seed),
    },
    20_000,
    profileArgs(options.cpuProfileDir),
  );
  return {
    kind: 'gateway',
    pid: gateway.pid,
    host: HOST,
    port: gateway.port,
    path: '/',
    socketIo: false,
    expectSnapshot: true,
    httpUrl: gateway.httpUrl,
    publisherStats: async () => undefined,
    stop: async () => {
      await gateway.stop();
    },
  };
}

const PEER_SCRIPTS: Readonly<Record<PeerKind, string>> = {
  uws: 'uws-server.js',
  ws: 'ws-server.js',
  socketio: 'socketio-server.js',
  gateway: 'gateway-server.js',
};

/** A server of bench/peers/ running the open-loop publisher; `gatewayEnv` is the gateway's configuration. */
async function startPeer(
  kind: PeerKind,
  options: ServerOptions,
  gatewayEnv: Readonly<Record<string, string>> = {},
): Promise<ServerUnderTest> {
  const config: PeerConfig = {
    host: HOST,
    topics: options.topics,
    ratePerTopic: options.ratePerTopic,
    tickMs: TICK_MS,
    seed: options.seed,
  };
  const script = fileURLToPath(new URL(`../peers/${PEER_SCRIPTS[kind]}`, import.meta.url));
  const child = fork(script, [], {
    env: { ...gatewayEnv, PATH: process.env.PATH ?? '', PEER_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [...(kind === 'gateway' ? GATEWAY_NODE_OPTIONS : []), ...profileArgs(options.cpuProfileDir)],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let port: number;
  try {
    port = (await nextMessage(child, 'listening', 20_000)).port;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const send = (message: ParentToPeer) => {
    if (child.exitCode === null && child.signalCode === null) child.send(message);
  };
  return {
    kind,
    pid: child.pid!,
    host: HOST,
    port,
    path: kind === 'socketio' ? '/socket.io/?EIO=4&transport=websocket' : '/',
    socketIo: kind === 'socketio',
    expectSnapshot: kind === 'gateway',
    httpUrl: kind === 'gateway' ? `http://${HOST}:${port}` : undefined,
    publisherStats: async (fromEpochMs, toEpochMs) => {
      const reply = nextMessage(child, 'stats', 30_000);
      send({ kind: 'stats', fromEpochMs, toEpochMs });
      return (await reply).stats;
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      send({ kind: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function nextMessage<K extends PeerToParent['kind']>(
  child: ChildProcess,
  kind: K,
  timeoutMs: number,
): Promise<Extract<PeerToParent, { kind: K }>> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (message: PeerToParent) => {
      if (message.kind !== kind) return;
      cleanup();
      resolve(message as Extract<PeerToParent, { kind: K }>);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      cleanup();
      reject(new Error(`peer exited (${signal ?? code}) while waiting for '${kind}'`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`peer: no '${kind}' within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}
