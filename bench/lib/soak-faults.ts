/**
 * The soak's faults: Redis killed (SIGKILL) and started again on the same port, with its data kept
 * (append-only file) or lost, alternately; the publisher restarted, with SIGTERM or SIGKILL,
 * alternately (a new upstream incarnation each time); a worker thread of the gateway made to fail
 * (SIGWINCH to the gateway, which the worker-fault-hook preload turns into the pool's fault
 * message). After each fault, how long until the gateway was ready again (or its worker replaced).
 */
import { performance } from 'node:perf_hooks';
import type { GatewayProcess } from './gateway-process.js';
import { PublisherProcess, RedisServer } from './redis-upstream.js';
import { sleep } from './report.js';

/** How long Redis stays down: the gateway must notice (stale) and reconnect. */
const REDIS_DOWN_MS = 2_000;
const RECOVERY_TIMEOUT_MS = 60_000;
const POLL_MS = 100;

export type FaultKind = 'redis' | 'publisher' | 'worker';

export interface FaultRecord {
  readonly kind: FaultKind;
  readonly atMs: number;
  /** e.g. "SIGKILL, data kept". */
  readonly how: string;
  /** From the fault to the gateway ready again (redis, publisher) or its worker replaced; NaN if never. */
  readonly recoveryMs: number;
}

/** Redis and the publisher writing into it, either of which may be replaced by a fault. */
export class Upstream {
  private redisRestarts = 0;
  private publisherRestarts = 0;

  private constructor(
    private redisServer: RedisServer,
    private publisherProcess: PublisherProcess,
    private readonly publisherEnv: Readonly<Record<string, string>>,
  ) {}

  static async start(publisherEnv: Readonly<Record<string, string>>): Promise<Upstream> {
    const redis = await RedisServer.start('aof');
    try {
      const publisher = await PublisherProcess.start({ REDIS_URL: redis.url, ...publisherEnv });
      return new Upstream(redis, publisher, publisherEnv);
    } catch (error) {
      await redis.stop();
      throw error;
    }
  }

  get redis(): RedisServer {
    return this.redisServer;
  }

  get publisher(): PublisherProcess {
    return this.publisherProcess;
  }

  /** SIGKILL, down for a moment, then started again on the same port; returns how. */
  async restartRedis(): Promise<string> {
    const keepData = this.redisRestarts++ % 2 === 0;
    this.redisServer = await this.redisServer.crashAndRestart(keepData, REDIS_DOWN_MS);
    return `SIGKILL, data ${keepData ? 'kept (append-only file)' : 'lost'}`;
  }

  async restartPublisher(): Promise<string> {
    const signal = this.publisherRestarts++ % 2 === 0 ? 'SIGTERM' : 'SIGKILL';
    await this.publisherProcess.stop(5_000, signal);
    this.publisherProcess = await PublisherProcess.start({
      REDIS_URL: this.redisServer.url,
      ...this.publisherEnv,
    });
    return signal;
  }

  async stop(): Promise<void> {
    await this.publisherProcess.stop();
    await this.redisServer.stop();
  }
}

async function readyStatus(gateway: GatewayProcess): Promise<number> {
  try {
    return (await fetch(`${gateway.httpUrl}/readyz`, { signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return 0;
  }
}

/** Polls until `done` answers true; the ms it took from `since`, NaN after RECOVERY_TIMEOUT_MS. */
async function until(since: number, done: () => Promise<boolean>): Promise<number> {
  while (performance.now() - since < RECOVERY_TIMEOUT_MS) {
    if (await done()) return performance.now() - since;
    await sleep(POLL_MS);
  }
  return Number.NaN;
}

export async function waitUntilReady(gateway: GatewayProcess, since = performance.now()): Promise<number> {
  return until(since, async () => (await readyStatus(gateway)) === 200);
}

/** Runs one fault and waits for the gateway to recover from it. */
export async function runFault(
  kind: FaultKind,
  upstream: Upstream,
  gateway: GatewayProcess,
  atMs: number,
): Promise<FaultRecord> {
  const started = performance.now();
  switch (kind) {
    case 'redis': {
      const how = await upstream.restartRedis();
      return { kind, atMs, how, recoveryMs: await waitUntilReady(gateway, started) };
    }
    case 'publisher': {
      const how = await upstream.restartPublisher();
      return { kind, atMs, how, recoveryMs: await waitUntilReady(gateway, started) };
    }
    case 'worker': {
      const restarts = () =>
        gateway.scrape().then(
          (m) => m.value('ws_worker_restarts_total', { reason: 'died' }) ?? 0,
          () => Number.NaN,
        );
      const before = await restarts();
      process.kill(gateway.pid, 'SIGWINCH');
      const recoveryMs = await until(started, async () => (await restarts()) > before);
      return { kind, atMs, how: 'worker 0: uncaught exception (crash)', recoveryMs };
    }
  }
}
