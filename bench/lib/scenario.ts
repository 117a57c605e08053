import { performance } from 'node:perf_hooks';
import {
  type ExitStatus,
  GatewayProcess,
  MetricsSampler,
  type PromMetrics,
  resourcesOf,
  type Timed,
} from './gateway-process.js';
import { LoadClientHandle } from './load-client-handle.js';
import type { LoadReport } from './load-protocol.js';
import { busyCoresBetween, readMachineCpu } from './machine-cpu.js';
import { sleep } from './report.js';

/**
 * One measured run: a fresh gateway process, load-client processes connected and subscribed, a
 * warm-up, then a fixed window in which the clients count and the gateway's CPU time is read at
 * both ends. /metrics is sampled over the whole run (warm-up included, so peaks are not missed).
 */
export interface ScenarioOptions {
  readonly gatewayEnv: Readonly<Record<string, string>>;
  readonly productIds: readonly string[];
  readonly channels: readonly string[];
  /** Load-client processes; connections are spread evenly over them. */
  readonly clientProcesses: number;
  readonly fastConnections: number;
  /** Connections opened when the window starts that subscribe and never read. */
  readonly stalledConnections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly sampleIntervalMs: number;
}

/**
 * Every load client connects from 127.0.0.1, so the gateway's per-IP admission limits (meant for
 * one client each behind the ingress) would refuse most of the benchmark's connections, and its
 * REST requests, with 429. Out of the way (REST_RATE_LIMIT_PER_SEC=0 turns that limit off); a
 * gateway that does not know these variables ignores them.
 */
export const ONE_IP_LIMITS: Readonly<Record<string, string>> = {
  WS_MAX_CONNECTIONS_PER_IP: '1000000',
  WS_CONNECT_RATE_PER_IP: '100000',
  WS_CONNECT_BURST_PER_IP: '100000',
  REST_RATE_LIMIT_PER_SEC: '0',
};

/** What is kept from each /metrics sample. */
export interface GatewaySample {
  readonly rssBytes: number;
  readonly cpuSeconds: number;
  readonly queueSize: number;
  readonly slowConsumers: number;
  readonly activeConnections: number;
  readonly slowDisconnects: number;
  /** nodejs_eventloop_lag_p99_seconds of the main thread (prom-client's sampling), in ms. */
  readonly eventLoopLagP99Ms: number;
}

export interface ScenarioResult {
  readonly reports: readonly LoadReport[];
  /** Between the two /metrics reads around the window. */
  readonly serverWindowMs: number;
  readonly serverCpuSeconds: number;
  /**
   * CPU the rest of the machine used during the window, in cores: all of it minus the gateway, the
   * load clients and this process (Linux only, else NaN). Well above zero, other work competed for
   * the cores and the figures include that contention.
   */
  readonly otherCpuCores: number;
  /** ws_messages_sent_total (all channels) handed to sockets during the window. */
  readonly serverMessagesSent: number;
  readonly peakRssBytes: number;
  /** RSS when the clients were connected and subscribed, before the warm-up. */
  readonly connectedRssBytes: number;
  /** /metrics over the whole run, every sampleIntervalMs, from just before the warm-up. */
  readonly series: ReadonlyArray<Timed<GatewaySample>>;
  /** The measurement window on the series' time base. */
  readonly window: { readonly fromMs: number; readonly toMs: number };
  readonly samplerFailures: number;
  /** ws_slow_consumer_disconnects_total by reason at the end of the window. */
  readonly slowDisconnectsByReason: Readonly<Record<string, number>>;
  /** ws_messages_conflated_total by channel at the end of the window. */
  readonly conflatedByChannel: Readonly<Record<string, number>>;
  readonly gatewayExit: ExitStatus;
}

export function sampleOf(metrics: PromMetrics): GatewaySample {
  const { cpuSeconds, rssBytes } = resourcesOf(metrics);
  return {
    rssBytes,
    cpuSeconds,
    queueSize: metrics.value('ws_message_queue_size') ?? Number.NaN,
    slowConsumers: metrics.value('ws_slow_consumers') ?? Number.NaN,
    activeConnections: metrics.value('ws_active_connections') ?? Number.NaN,
    slowDisconnects: metrics.sum('ws_slow_consumer_disconnects_total'),
    eventLoopLagP99Ms: (metrics.value('nodejs_eventloop_lag_p99_seconds') ?? Number.NaN) * 1000,
  };
}

function byLabel(metrics: PromMetrics, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of metrics.samples) if (s.name === name && s.value > 0) out[s.labels[label] ?? ''] = s.value;
  return out;
}

/** Splits `total` over `parts` as evenly as possible. */
const share = (total: number, parts: number, index: number) =>
  Math.floor(total / parts) + (index < total % parts ? 1 : 0);

export async function runScenario(
  options: ScenarioOptions,
  log: (line: string) => void,
): Promise<ScenarioResult> {
  const gateway = await GatewayProcess.start({
    ...ONE_IP_LIMITS,
    PRODUCTS: options.productIds.join(','),
    ...options.gatewayEnv,
  });
  const clients: LoadClientHandle[] = [];
  let sampler: MetricsSampler<GatewaySample> | undefined;
  try {
    log(`gateway pid ${gateway.pid} on port ${gateway.port}; connecting`);
    // Pushed as each one is ready, so a failure of another still leaves every started one killable.
    await Promise.all(
      Array.from({ length: options.clientProcesses }, async (_, i) => {
        const client = await LoadClientHandle.start({
          label: `client-${i}`,
          url: gateway.wsUrl,
          connections:
            share(options.fastConnections, options.clientProcesses, i) +
            share(options.stalledConnections, options.clientProcesses, i),
          stalled: share(options.stalledConnections, options.clientProcesses, i),
          channels: options.channels,
          productIds: options.productIds,
          connectConcurrency: 32,
          readyTimeoutMs: 30_000,
        });
        clients.push(client);
      }),
    );
    const notReady = clients.map((c) => c.ready.error).filter((e) => e !== undefined);
    if (notReady.length > 0) throw new Error(`load clients not ready: ${notReady.join('; ')}`);

    const connectedRssBytes = (await gateway.resources()).rssBytes;
    sampler = new MetricsSampler(gateway, options.sampleIntervalMs, sampleOf);
    log(`${options.fastConnections} connections subscribed; warming up`);
    await sleep(options.warmupMs);

    const before = await gateway.scrape();
    const machineBefore = readMachineCpu();
    const ownBefore = process.cpuUsage();
    const windowStart = performance.now();
    const fromMs = sampler.elapsedMs();
    const reports = Promise.all(clients.map((c) => c.measure(options.durationMs)));
    reports.catch(() => {}); // awaited below; a client failing meanwhile must not be an unhandled rejection
    log(`measuring for ${options.durationMs / 1000} s`);
    await sleep(options.durationMs);
    const after = await gateway.scrape();
    const serverWindowMs = performance.now() - windowStart;
    const machineCores = busyCoresBetween(machineBefore, readMachineCpu());
    const own = process.cpuUsage(ownBefore);
    const toMs = sampler.elapsedMs();
    const clientReports = await reports;
    await Promise.all(clients.map((c) => c.stop()));
    const series = await sampler.stop();
    const peakRssBytes = Math.max(connectedRssBytes, ...series.map((s) => s.value.rssBytes));
    log('stopping');
    const gatewayExit = await gateway.stop();
    const serverCpuSeconds = resourcesOf(after).cpuSeconds - resourcesOf(before).cpuSeconds;
    const ownCores = (own.user + own.system) / 1000 / serverWindowMs;
    const clientCores = clientReports.reduce((sum, r) => sum + r.cpuCores, 0);
    return {
      reports: clientReports,
      serverWindowMs,
      serverCpuSeconds,
      otherCpuCores: machineCores - serverCpuSeconds / (serverWindowMs / 1000) - clientCores - ownCores,
      serverMessagesSent: after.sum('ws_messages_sent_total') - before.sum('ws_messages_sent_total'),
      peakRssBytes,
      connectedRssBytes,
      series,
      window: { fromMs, toMs },
      samplerFailures: sampler.failures,
      slowDisconnectsByReason: byLabel(after, 'ws_slow_consumer_disconnects_total', 'reason'),
      conflatedByChannel: byLabel(after, 'ws_messages_conflated_total', 'channel'),
      gatewayExit,
    };
  } catch (error) {
    const status = gateway.exitStatus;
    const { stdout, stderr } = gateway.outputTail;
    log(
      `run failed; the gateway ${status ? `had exited (${status.signal ?? status.code})` : 'was running'}; ` +
        `its last output:\n${stdout}${stderr}`,
    );
    throw error;
  } finally {
    for (const client of clients) client.kill();
    await sampler?.stop();
    await gateway.stop();
  }
}
