import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { FaultProxy } from './fault-proxy.js';
import { type RedisProcess, startRedis } from './redis-server.js';

/**
 * A Sentinel-managed Redis for a test, all real processes on free ports of 127.0.0.1: a primary, a
 * replica of it (`--replicaof`) and three `redis-server --sentinel` processes with a quorum of 2,
 * each with a config file of its own in a temporary directory (Sentinel rewrites it). The replica
 * replicates through a FaultProxy, so a test can make it miss writes the primary acknowledged, as
 * asynchronous replication does when a primary fails.
 */
export interface SentinelSetup {
  readonly masterName: string;
  readonly primary: RedisProcess;
  readonly replica: RedisProcess;
  /** The replica's link to the primary: freeze() it and the replica gets nothing more. */
  readonly replication: FaultProxy;
  readonly sentinels: readonly RedisProcess[];
  /** REDIS_SENTINELS for the gateway: `127.0.0.1:<port>` of every Sentinel. */
  readonly addresses: string;
  /** The first +switch-master any Sentinel published: the new primary's port and performance.now() then. */
  readonly switched: Promise<{ readonly port: number; readonly at: number }>;
  /** The primary's port as a Sentinel reports it now (SENTINEL get-master-addr-by-name). */
  masterPort(sentinel?: number): Promise<number>;
  stop(): Promise<void>;
}

export interface SentinelTimings {
  /** How long the primary may be unreachable before a Sentinel considers it down. */
  readonly downAfterMs: number;
  /**
   * Also how long a Sentinel leaves a replica replicating from another address than the primary's
   * (here: the proxy's) before it re-points it at the primary itself (+fix-slave-config), which
   * would take the proxy out of the path: longer than a test runs up to its failover.
   */
  readonly failoverTimeoutMs: number;
}

const SETTLE_TIMEOUT_MS = 20_000;

export async function startSentinels(
  timings: SentinelTimings = { downAfterMs: 1_000, failoverTimeoutMs: 60_000 },
): Promise<SentinelSetup> {
  const masterName = 'matchbook';
  const configDir = mkdtempSync(join(tmpdir(), 'matchbook-sentinel-'));
  const started: RedisProcess[] = [];
  const subscribers: Redis[] = [];
  let replication: FaultProxy | undefined;
  const stop = async () => {
    for (const s of subscribers) s.disconnect();
    await replication?.close();
    await Promise.all(started.map((p) => p.stop()));
    rmSync(configDir, { recursive: true, force: true });
  };
  try {
    const primary = await startRedis();
    started.push(primary);
    replication = await FaultProxy.start(primary.port);
    const replica = await startRedis({
      mode: {
        args: ['--replicaof', '127.0.0.1', String(replication.port)],
        ready: 'MASTER <-> REPLICA sync: Finished with success',
      },
    });
    started.push(replica);
    const sentinels: RedisProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const file = join(configDir, `sentinel-${i}.conf`);
      writeFileSync(
        file,
        [
          `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 2`,
          `sentinel down-after-milliseconds ${masterName} ${timings.downAfterMs}`,
          `sentinel failover-timeout ${masterName} ${timings.failoverTimeoutMs}`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      const sentinel = await startRedis({ mode: { args: [file, '--sentinel'], ready: '+monitor master' } });
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    const query = (port: number) => {
      const client = new Redis({ host: '127.0.0.1', port, protocol: 2, lazyConnect: true });
      client.on('error', () => undefined);
      return client;
    };
    let switchedTo: (value: { port: number; at: number }) => void = () => undefined;
    const switched = new Promise<{ port: number; at: number }>((resolve) => {
      switchedTo = resolve;
    });
    for (const sentinel of sentinels) {
      const subscriber = query(sentinel.port);
      subscribers.push(subscriber);
      subscriber.on('message', (_channel: string, text: string) => {
        // "<name> <old ip> <old port> <new ip> <new port>"
        const at = performance.now();
        const [name, , , , port] = text.split(' ');
        if (name === masterName) switchedTo({ port: Number(port), at });
      });
      await subscriber.subscribe('+switch-master');
    }
    const masterPort = async (index = 0) => {
      const client = query(sentinels[index]!.port);
      try {
        const [, port] = (await client.call('SENTINEL', 'get-master-addr-by-name', masterName)) as string[];
        return Number(port);
      } finally {
        client.disconnect();
      }
    };
    // A failover needs every Sentinel to know the replica and the other two (they find each other
    // through the primary's hello channel, every 2 s). That is state inside them, with no event a
    // client can await from outside: read it until it holds.
    const deadline = performance.now() + SETTLE_TIMEOUT_MS;
    for (const sentinel of sentinels) {
      const client = query(sentinel.port);
      try {
        for (;;) {
          const replicas = (await client.call('SENTINEL', 'replicas', masterName)) as unknown[];
          const others = (await client.call('SENTINEL', 'sentinels', masterName)) as unknown[];
          if (replicas.length === 1 && others.length === 2) break;
          if (performance.now() > deadline)
            throw new Error(
              `Sentinel on ${sentinel.port} knows ${replicas.length} replicas, ${others.length} Sentinels`,
            );
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        client.disconnect();
      }
    }
    return {
      masterName,
      primary,
      replica,
      replication,
      sentinels,
      addresses: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
      switched,
      masterPort,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
