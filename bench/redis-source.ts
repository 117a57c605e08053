/**
 * Benchmark (issue 6): what feeding the gateway through Redis costs, against its built-in simulator.
 *
 * Two setups, the same products, SIM_EVENTS_PER_SEC and SIM_SEED, and the same client load:
 *   simulator  FEED_SOURCE=simulator: the markets run inside the gateway;
 *   redis      a redis-server of our own (free port, nothing persisted), `node dist/src/main.js publish`
 *              running the same markets into it, and the gateway with FEED_SOURCE=redis reading it.
 * They alternate (simulator, redis, simulator, redis for --rounds 2), each with fresh processes (and
 * a fresh, empty Redis), so drift of the shared machine falls on both.
 *
 * Load: --connections connections from --clients load-client processes, plus a lightly loaded probe
 * process with --probe connections, all subscribed to level2 + matches + ticker on every product.
 * After --warmup seconds everything is measured for --duration seconds. Per run:
 *   - delivered messages/s (every client, probe included);
 *   - feed-to-client latency percentiles: receipt time minus the message's `time`, which is the
 *     event's creation time in the simulator or the publisher, so the redis runs include the
 *     publisher → Redis → gateway hop. The load clients' figures include their own queueing (they
 *     read tens of thousands of messages/s); the probe's are closer to the hop itself;
 *   - the gateway's own mean feed-to-send time (ws_feed_to_send_latency_seconds: from the event
 *     entering the gateway to uWS), which excludes the hop;
 *   - level2 gaps and resnapshots seen by clients, and the gateway's invalid/gap feed counters;
 *   - gateway CPU (its /metrics) per delivered message and peak RSS; publisher CPU (/proc); Redis
 *     CPU (INFO cpu: used_cpu_user + used_cpu_sys) and commands; all per upstream event as well;
 *   - generator ELU (above 0.9 the load clients, not the gateway, set the pace) and the CPU the rest
 *     of the machine used (figures with much of it include contention).
 * Then a summary per setup (mean over rounds) with the ratios redis / simulator. Asserts nothing.
 *
 *   npm run bench:redis -- [--duration 15] [--warmup 5] [--connections 100] [--rate 100] [--rounds 2]
 *                          [--clients 2] [--probe 4] [--threads 0] [--smoke]
 *
 * Prints markdown tables and writes bench/out/redis-source-<timestamp>.json.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  type ExitStatus,
  GatewayProcess,
  MetricsSampler,
  type PromMetrics,
  resourcesOf,
  type Timed,
} from './lib/gateway-process.js';
import { LoadClientHandle } from './lib/load-client-handle.js';
import type { LoadReport } from './lib/load-protocol.js';
import { busyCoresBetween, readMachineCpu } from './lib/machine-cpu.js';
import {
  commandStats,
  infoNumber,
  PublisherProcess,
  processCpuSeconds,
  processMemory,
  type RedisInfo,
  RedisServer,
} from './lib/redis-upstream.js';
import {
  contentionNote,
  fmt,
  type GroupTotals,
  generatorLoad,
  machineInfo,
  markdownTable,
  sleep,
  totalsOf,
  writeJsonResult,
} from './lib/report.js';
import { type GatewaySample, ONE_IP_LIMITS, sampleOf } from './lib/scenario.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC'];
const CHANNELS = ['level2', 'matches', 'ticker'];
const SEED = '7';
/** The publisher's defaults (README), stated so the JSON records them. */
const PUBLISH_MAXLEN = '10000';
const PUBLISH_SNAPSHOT_MS = '1000';
const SAMPLE_INTERVAL_MS = 500;
const READY_TIMEOUT_MS = 20_000;

type Source = 'simulator' | 'redis';

const HELP = `Usage: npm run bench:redis -- [options]
  --duration <s>      measured seconds per run (default 15; smoke 2)
  --warmup <s>        unmeasured seconds before each window (default 5; smoke 1)
  --connections <n>   load connections in total (default 100; smoke 50)
  --rate <n>          SIM_EVENTS_PER_SEC per product, simulator and publisher alike (default 100)
  --rounds <n>        simulator+redis pairs, alternating (default 2; smoke 1)
  --clients <n>       load-client processes (default 2)
  --probe <n>         connections of the lightly loaded probe process (default 4)
  --threads <n>       WS_WORKER_THREADS of the gateway (default 0)
  --smoke             a few seconds in total: checks the benchmark works, measures nothing useful`;

interface Options {
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly rate: number;
  readonly rounds: number;
  readonly clients: number;
  readonly probe: number;
  readonly threads: number;
  readonly smoke: boolean;
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`--${name} must be a positive number, got ${raw}`);
  return value;
}

function options(): Options | undefined {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      rounds: { type: 'string' },
      clients: { type: 'string' },
      probe: { type: 'string' },
      threads: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return undefined;
  }
  const smoke = values.smoke === true;
  const threads = Number(values.threads ?? '0');
  if (!Number.isInteger(threads) || threads < 0 || threads > 64)
    throw new Error(`--threads must be an integer from 0 to 64, got ${values.threads}`);
  return {
    durationS: positive('duration', values.duration, smoke ? 2 : 15),
    warmupS: positive('warmup', values.warmup, smoke ? 1 : 5),
    connections: Math.round(positive('connections', values.connections, smoke ? 50 : 100)),
    rate: positive('rate', values.rate, 100),
    rounds: Math.round(positive('rounds', values.rounds, smoke ? 1 : 2)),
    clients: Math.round(positive('clients', values.clients, 2)),
    probe: Math.round(positive('probe', values.probe, 4)),
    threads,
    smoke,
  };
}

// --- one run ------------------------------------------------------------------------------------

/** Splits `total` over `parts` as evenly as possible. */
const share = (total: number, parts: number, index: number) =>
  Math.floor(total / parts) + (index < total % parts ? 1 : 0);

function byLabel(metrics: PromMetrics, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of metrics.samples) if (s.name === name) out[s.labels[label] ?? ''] = s.value;
  return out;
}

function deltaOf(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const delta = value - (before[key] ?? 0);
    if (delta !== 0) out[key] = delta;
  }
  return out;
}

/**
 * ws_feed_to_send_latency_seconds over the window, every channel together: the mean, and the upper
 * bound of the bucket holding the 50th and 99th percentiles (a Prometheus histogram says no more).
 */
function feedToSend(before: PromMetrics, after: PromMetrics) {
  const name = 'ws_feed_to_send_latency_seconds';
  const count = after.sum(`${name}_count`) - before.sum(`${name}_count`);
  const sum = after.sum(`${name}_sum`) - before.sum(`${name}_sum`);
  const cumulative = new Map<number, number>();
  for (const [metrics, sign] of [
    [after, 1],
    [before, -1],
  ] as const) {
    for (const s of metrics.samples) {
      if (s.name !== `${name}_bucket`) continue;
      const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
      cumulative.set(le, (cumulative.get(le) ?? 0) + sign * s.value);
    }
  }
  const bounds = [...cumulative.keys()].sort((a, b) => a - b);
  const atMost = (p: number) => {
    if (count <= 0) return Number.NaN;
    const le = bounds.find((b) => cumulative.get(b)! >= p * count);
    return le === undefined ? Number.NaN : le * 1000;
  };
  return {
    messages: count,
    meanMs: count > 0 ? (sum / count) * 1000 : Number.NaN,
    p50AtMostMs: atMost(0.5),
    p99AtMostMs: atMost(0.99),
  };
}

async function waitUntilReady(gateway: GatewayProcess, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < deadline) {
    try {
      const response = await fetch(`${gateway.httpUrl}/readyz`, { signal: AbortSignal.timeout(2_000) });
      last = `${response.status} ${await response.text()}`;
      if (response.ok) return;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`gateway not ready within ${timeoutMs} ms: ${last}`);
}

/** What is read at both ends of the window. */
interface Probe {
  readonly gateway: PromMetrics;
  readonly redis: RedisInfo | undefined;
  readonly redisProcCpu: number;
  readonly publisherCpu: number;
  readonly at: number;
}

interface RunResult {
  readonly source: Source;
  readonly round: number;
  readonly load: readonly LoadReport[];
  readonly probe: LoadReport;
  readonly windowMs: number;
  readonly gateway: {
    readonly cpuSeconds: number;
    readonly messagesSent: number;
    readonly feedEvents: number;
    readonly invalidEvents: Readonly<Record<string, number>>;
    readonly feedToSend: ReturnType<typeof feedToSend>;
    readonly connectedRssBytes: number;
    readonly peakRssBytes: number;
    readonly vmHwmBytes: number;
    readonly series: ReadonlyArray<Timed<GatewaySample>>;
    readonly samplerFailures: number;
    readonly exit: ExitStatus;
  };
  readonly publisher:
    | {
        readonly cpuSeconds: number;
        readonly peakRssBytes: number;
        readonly warnings: number;
        readonly exit: { code: number | null; signal: NodeJS.Signals | null };
      }
    | undefined;
  readonly redis:
    | {
        /** used_cpu_user + used_cpu_sys (INFO cpu). */
        readonly cpuSeconds: number;
        /** The same from /proc, as a cross-check. */
        readonly procCpuSeconds: number;
        readonly commandsProcessed: number;
        readonly commandStats: Record<string, { calls: number; usec: number }>;
        readonly usedMemoryRssBytes: number;
        readonly peakRssBytes: number;
        readonly keyspace: string | undefined;
      }
    | undefined;
  /** Cores the rest of the machine used during the window (all of it minus every process of the run). */
  readonly otherCpuCores: number;
}

async function runOnce(
  source: Source,
  round: number,
  opts: Options,
  log: (line: string) => void,
): Promise<RunResult> {
  let redis: RedisServer | undefined;
  let publisher: PublisherProcess | undefined;
  let gateway: GatewayProcess | undefined;
  const clients: LoadClientHandle[] = [];
  let sampler: MetricsSampler<GatewaySample> | undefined;
  try {
    const sim = { SIM_EVENTS_PER_SEC: String(opts.rate), SIM_SEED: SEED };
    let feedEnv: Record<string, string> = { FEED_SOURCE: 'simulator', ...sim };
    if (source === 'redis') {
      redis = await RedisServer.start();
      publisher = await PublisherProcess.start({
        REDIS_URL: redis.url,
        PRODUCTS: PRODUCTS.join(','),
        ...sim,
        PUBLISH_MAXLEN,
        PUBLISH_SNAPSHOT_MS,
      });
      log(`redis-server pid ${redis.pid} on port ${redis.port}; publisher pid ${publisher.pid}`);
      feedEnv = { FEED_SOURCE: 'redis', REDIS_URL: redis.url };
    }
    gateway = await GatewayProcess.start({
      ...ONE_IP_LIMITS,
      PRODUCTS: PRODUCTS.join(','),
      WS_WORKER_THREADS: String(opts.threads),
      ...feedEnv,
    });
    await waitUntilReady(gateway, READY_TIMEOUT_MS);
    log(`gateway pid ${gateway.pid} on port ${gateway.port} ready; connecting`);
    const url = gateway.wsUrl;
    const start = (label: string, connections: number) =>
      LoadClientHandle.start({
        label,
        url,
        connections,
        stalled: 0,
        channels: CHANNELS,
        productIds: PRODUCTS,
        connectConcurrency: 32,
        readyTimeoutMs: 30_000,
      }).then((client) => {
        clients.push(client);
        return client;
      });
    const [probe, ...load] = await Promise.all([
      start('probe', opts.probe),
      ...Array.from({ length: opts.clients }, (_, i) =>
        start(`client-${i}`, share(opts.connections, opts.clients, i)),
      ),
    ]);
    const notReady = clients.map((c) => c.ready.error).filter((e) => e !== undefined);
    if (notReady.length > 0) throw new Error(`load clients not ready: ${notReady.join('; ')}`);

    const connectedRssBytes = (await gateway.resources()).rssBytes;
    sampler = new MetricsSampler(gateway, SAMPLE_INTERVAL_MS, sampleOf);
    log(`${opts.connections} + ${opts.probe} probe connections subscribed; warming up`);
    await sleep(opts.warmupS * 1000);

    const read = async (): Promise<Probe> => {
      const [metrics, info] = await Promise.all([gateway!.scrape(), redis?.info()]);
      return {
        gateway: metrics,
        redis: info,
        redisProcCpu: redis ? processCpuSeconds(redis.pid) : Number.NaN,
        publisherCpu: publisher ? processCpuSeconds(publisher.pid) : Number.NaN,
        at: performance.now(),
      };
    };
    const before = await read();
    const machineBefore = readMachineCpu();
    const ownBefore = process.cpuUsage();
    const durationMs = opts.durationS * 1000;
    const reports = Promise.all([probe!.measure(durationMs), ...load.map((c) => c.measure(durationMs))]);
    reports.catch(() => {}); // awaited below; a client failing meanwhile must not be an unhandled rejection
    log(`measuring for ${opts.durationS} s`);
    await sleep(durationMs);
    const after = await read();
    const machineCores = busyCoresBetween(machineBefore, readMachineCpu());
    const own = process.cpuUsage(ownBefore);
    const [probeReport, ...loadReports] = await reports;
    await Promise.all(clients.map((c) => c.stop()));
    const series = await sampler.stop();

    const windowMs = after.at - before.at;
    const windowS = windowMs / 1000;
    const gatewayCpu = resourcesOf(after.gateway).cpuSeconds - resourcesOf(before.gateway).cpuSeconds;
    const publisherCpu = after.publisherCpu - before.publisherCpu;
    const redisCpu =
      before.redis && after.redis
        ? infoNumber(after.redis, 'used_cpu_user') +
          infoNumber(after.redis, 'used_cpu_sys') -
          infoNumber(before.redis, 'used_cpu_user') -
          infoNumber(before.redis, 'used_cpu_sys')
        : Number.NaN;
    const clientCores = [probeReport!, ...loadReports].reduce((sum, r) => sum + r.cpuCores, 0);
    const ownCores = (own.user + own.system) / 1000 / windowMs;
    const upstreamCores =
      (Number.isNaN(publisherCpu) ? 0 : publisherCpu) + (Number.isNaN(redisCpu) ? 0 : redisCpu);
    const gatewayHwm = processMemory(gateway.pid).peakRssBytes;
    const publisherMemory = publisher ? processMemory(publisher.pid) : undefined;
    const redisMemory = redis ? processMemory(redis.pid) : undefined;

    log('stopping');
    const gatewayExit = await gateway.stop();
    const publisherExit = await publisher?.stop();
    const result: RunResult = {
      source,
      round,
      load: loadReports,
      probe: probeReport!,
      windowMs,
      gateway: {
        cpuSeconds: gatewayCpu,
        messagesSent:
          after.gateway.sum('ws_messages_sent_total') - before.gateway.sum('ws_messages_sent_total'),
        feedEvents: after.gateway.sum('ws_feed_events_total') - before.gateway.sum('ws_feed_events_total'),
        invalidEvents: deltaOf(
          byLabel(after.gateway, 'ws_feed_invalid_events_total', 'reason'),
          byLabel(before.gateway, 'ws_feed_invalid_events_total', 'reason'),
        ),
        feedToSend: feedToSend(before.gateway, after.gateway),
        connectedRssBytes,
        peakRssBytes: Math.max(connectedRssBytes, ...series.map((s) => s.value.rssBytes)),
        vmHwmBytes: gatewayHwm,
        series,
        samplerFailures: sampler.failures,
        exit: gatewayExit,
      },
      publisher: publisher
        ? {
            cpuSeconds: publisherCpu,
            peakRssBytes: publisherMemory!.peakRssBytes,
            warnings: publisher.warnings,
            exit: publisherExit!,
          }
        : undefined,
      redis:
        redis && before.redis && after.redis
          ? {
              cpuSeconds: redisCpu,
              procCpuSeconds: after.redisProcCpu - before.redisProcCpu,
              commandsProcessed:
                infoNumber(after.redis, 'total_commands_processed') -
                infoNumber(before.redis, 'total_commands_processed'),
              commandStats: Object.fromEntries(
                Object.entries(commandStats(after.redis)).map(([cmd, a]) => {
                  const b = commandStats(before.redis!)[cmd] ?? { calls: 0, usec: 0 };
                  return [cmd, { calls: a.calls - b.calls, usec: a.usec - b.usec }];
                }),
              ),
              usedMemoryRssBytes: infoNumber(after.redis, 'used_memory_rss'),
              peakRssBytes: redisMemory!.peakRssBytes,
              keyspace: after.redis.db0,
            }
          : undefined,
      otherCpuCores: machineCores - (gatewayCpu + upstreamCores) / windowS - clientCores - ownCores,
    };
    return result;
  } catch (error) {
    const status = gateway?.exitStatus;
    const tail = gateway?.outputTail;
    log(
      `run failed; the gateway ${status ? `had exited (${status.signal ?? status.code})` : 'was running'}; ` +
        `its last output:\n${tail ? tail.stdout + tail.stderr : '(not started)'}` +
        (publisher ? `\nthe publisher's last output:\n${publisher.outputTail}` : ''),
    );
    throw error;
  } finally {
    for (const client of clients) client.kill();
    await sampler?.stop();
    await gateway?.stop();
    await publisher?.stop();
    await redis?.stop();
  }
}

// --- rows ---------------------------------------------------------------------------------------

interface Row {
  readonly source: Source;
  readonly round: number;
  readonly deliveredPerSecond: number;
  readonly feedEventsPerSecond: number;
  readonly latency: GroupTotals['latency'];
  readonly probeLatency: GroupTotals['latency'];
  readonly gatewayFeedToSendMeanMs: number;
  readonly gaps: number;
  readonly resnapshots: number;
  readonly gatewayInvalidEvents: number;
  readonly gatewayCpuCores: number;
  readonly gatewayMicrosPerMessage: number;
  readonly publisherCpuCores: number;
  readonly redisCpuCores: number;
  /** Gateway + publisher + Redis: everything the feed path costs, per delivered message. */
  readonly totalMicrosPerMessage: number;
  readonly publisherMicrosPerEvent: number;
  readonly redisMicrosPerEvent: number;
  readonly redisCommandsPerSecond: number;
  readonly gatewayPeakRssBytes: number;
  readonly upstreamPeakRssBytes: number;
  readonly generatorElu: number;
  readonly generatorSaturated: boolean;
  readonly probeElu: number;
  readonly otherCpuCores: number;
  readonly unexpectedCloses: Readonly<Record<string, number>>;
  readonly publisherWarnings: number;
  readonly negativeLatencies: number;
}

function rowOf(run: RunResult): Row {
  const all = totalsOf([...run.load, run.probe], 'fast');
  const load = totalsOf(run.load, 'fast');
  const probe = totalsOf([run.probe], 'fast');
  const windowS = run.windowMs / 1000;
  const gatewayCpuCores = run.gateway.cpuSeconds / windowS;
  const publisherCpuCores = (run.publisher?.cpuSeconds ?? 0) / windowS;
  const redisCpuCores = (run.redis?.cpuSeconds ?? 0) / windowS;
  const delivered = all.messagesPerSecond;
  const events = run.gateway.feedEvents / windowS;
  const generators = generatorLoad(run.load);
  const negative = [...run.load, run.probe].reduce((n, r) => n + r.groups.fast.latency.negative, 0);
  return {
    source: run.source,
    round: run.round,
    deliveredPerSecond: delivered,
    feedEventsPerSecond: events,
    latency: load.latency,
    probeLatency: probe.latency,
    gatewayFeedToSendMeanMs: run.gateway.feedToSend.meanMs,
    gaps: all.gaps,
    resnapshots: all.resnapshots,
    gatewayInvalidEvents: Object.values(run.gateway.invalidEvents).reduce((a, b) => a + b, 0),
    gatewayCpuCores,
    gatewayMicrosPerMessage: (gatewayCpuCores / delivered) * 1e6,
    publisherCpuCores: run.publisher ? publisherCpuCores : Number.NaN,
    redisCpuCores: run.redis ? redisCpuCores : Number.NaN,
    totalMicrosPerMessage: ((gatewayCpuCores + publisherCpuCores + redisCpuCores) / delivered) * 1e6,
    publisherMicrosPerEvent: run.publisher ? (publisherCpuCores / events) * 1e6 : Number.NaN,
    redisMicrosPerEvent: run.redis ? (redisCpuCores / events) * 1e6 : Number.NaN,
    redisCommandsPerSecond: run.redis ? run.redis.commandsProcessed / windowS : Number.NaN,
    gatewayPeakRssBytes: run.gateway.peakRssBytes,
    upstreamPeakRssBytes: run.publisher
      ? run.publisher.peakRssBytes + (run.redis?.peakRssBytes ?? 0)
      : Number.NaN,
    generatorElu: generators.maxElu,
    generatorSaturated: generators.saturated,
    probeElu: run.probe.eventLoopUtilization,
    otherCpuCores: run.otherCpuCores,
    unexpectedCloses: all.closes,
    publisherWarnings: run.publisher?.warnings ?? 0,
    negativeLatencies: negative,
  };
}

function runsTable(rows: readonly Row[]): string {
  return markdownTable(
    [
      'run',
      'feed',
      'delivered msg/s',
      'feed events/s',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'p99.9 ms',
      'probe p50 / p99 ms',
      'gw feed→send ms',
      'gaps',
      'gateway CPU',
      'gw µs/msg',
      'publisher CPU',
      'Redis CPU',
      'all µs/msg',
      'gw peak RSS MB',
      'pub+Redis RSS MB',
      'generator ELU',
      'other CPU',
    ],
    rows.map((r, i) => [
      String(i + 1),
      r.source,
      fmt.int(r.deliveredPerSecond),
      fmt.int(r.feedEventsPerSecond),
      fmt.ms(r.latency.p50Ms),
      fmt.ms(r.latency.p90Ms),
      fmt.ms(r.latency.p99Ms),
      fmt.ms(r.latency.p999Ms),
      `${fmt.ms(r.probeLatency.p50Ms)} / ${fmt.ms(r.probeLatency.p99Ms)}`,
      fmt.fixed(r.gatewayFeedToSendMeanMs, 3),
      `${r.gaps}${r.resnapshots + r.gatewayInvalidEvents > 0 ? ` (${r.resnapshots} resnap, ${r.gatewayInvalidEvents} invalid)` : ''}`,
      fmt.fixed(r.gatewayCpuCores, 3),
      fmt.fixed(r.gatewayMicrosPerMessage),
      Number.isNaN(r.publisherCpuCores) ? '-' : fmt.fixed(r.publisherCpuCores, 3),
      Number.isNaN(r.redisCpuCores) ? '-' : fmt.fixed(r.redisCpuCores, 3),
      fmt.fixed(r.totalMicrosPerMessage),
      fmt.mb(r.gatewayPeakRssBytes),
      Number.isNaN(r.upstreamPeakRssBytes) ? '-' : fmt.mb(r.upstreamPeakRssBytes),
      `${fmt.fixed(r.generatorElu)}${r.generatorSaturated ? ' (saturated)' : ''}`,
      fmt.fixed(r.otherCpuCores),
    ]),
  );
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

interface SummaryLine {
  readonly metric: string;
  readonly simulator: number;
  readonly redis: number;
  readonly format: (n: number) => string;
}

function summary(rows: readonly Row[]): SummaryLine[] {
  const of = (source: Source, pick: (r: Row) => number) =>
    mean(rows.filter((r) => r.source === source).map(pick));
  const line = (metric: string, pick: (r: Row) => number, format: (n: number) => string): SummaryLine => ({
    metric,
    simulator: of('simulator', pick),
    redis: of('redis', pick),
    format,
  });
  const ms = fmt.ms;
  const us = (n: number) => fmt.fixed(n);
  const cores = (n: number) => fmt.fixed(n, 3);
  return [
    line('delivered msg/s', (r) => r.deliveredPerSecond, fmt.int),
    line('feed events/s (gateway applied)', (r) => r.feedEventsPerSecond, fmt.int),
    line('latency p50 ms (load clients)', (r) => r.latency.p50Ms, ms),
    line('latency p99 ms (load clients)', (r) => r.latency.p99Ms, ms),
    line('latency p99.9 ms (load clients)', (r) => r.latency.p999Ms, ms),
    line('latency p50 ms (probe)', (r) => r.probeLatency.p50Ms, ms),
    line('latency p99 ms (probe)', (r) => r.probeLatency.p99Ms, ms),
    line(
      'gateway feed→send mean ms',
      (r) => r.gatewayFeedToSendMeanMs,
      (n) => fmt.fixed(n, 3),
    ),
    line(
      'gaps seen by clients',
      (r) => r.gaps,
      (n) => fmt.fixed(n, 1),
    ),
    line('gateway CPU (cores)', (r) => r.gatewayCpuCores, cores),
    line('gateway CPU µs / delivered msg', (r) => r.gatewayMicrosPerMessage, us),
    line('publisher CPU (cores)', (r) => (r.source === 'redis' ? r.publisherCpuCores : 0), cores),
    line('Redis CPU (cores)', (r) => (r.source === 'redis' ? r.redisCpuCores : 0), cores),
    line(
      'gateway+publisher+Redis CPU (cores)',
      (r) => r.gatewayCpuCores + zero(r.publisherCpuCores) + zero(r.redisCpuCores),
      cores,
    ),
    line('all CPU µs / delivered msg', (r) => r.totalMicrosPerMessage, us),
    line(
      'publisher+Redis CPU µs / upstream event',
      (r) => ((zero(r.publisherCpuCores) + zero(r.redisCpuCores)) / r.feedEventsPerSecond) * 1e6,
      us,
    ),
    line(
      'all CPU µs / upstream event (fanout included)',
      (r) =>
        ((r.gatewayCpuCores + zero(r.publisherCpuCores) + zero(r.redisCpuCores)) / r.feedEventsPerSecond) *
        1e6,
      us,
    ),
    line('gateway peak RSS MB', (r) => r.gatewayPeakRssBytes, fmt.mb),
    line(
      'gateway+publisher+Redis peak RSS MB',
      (r) => r.gatewayPeakRssBytes + zero(r.upstreamPeakRssBytes),
      fmt.mb,
    ),
    line(
      'generator ELU (busiest)',
      (r) => r.generatorElu,
      (n) => fmt.fixed(n),
    ),
    line(
      'other processes CPU (cores)',
      (r) => r.otherCpuCores,
      (n) => fmt.fixed(n),
    ),
  ];
}

const zero = (n: number) => (Number.isNaN(n) ? 0 : n);

function summaryTable(lines: readonly SummaryLine[]): string {
  return markdownTable(
    ['metric', 'simulator (a)', 'redis (b)', 'b / a', 'b − a'],
    lines.map((l) => [
      l.metric,
      l.format(l.simulator),
      l.format(l.redis),
      l.simulator === 0 ? '-' : fmt.fixed(l.redis / l.simulator),
      l.format(l.redis - l.simulator),
    ]),
  );
}

// --- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = options();
  if (!opts) return;
  const started = performance.now();
  const log = (line: string) =>
    process.stderr.write(`[bench:redis +${((performance.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
  log(
    `${opts.connections} connections from ${opts.clients} processes + ${opts.probe} probe connections, ` +
      `${opts.rate} events/s on each of ${PRODUCTS.length} products (seed ${SEED}), ` +
      `${opts.warmupS} s warm-up + ${opts.durationS} s per run, ${opts.rounds} round(s) of simulator, redis`,
  );
  const machine = machineInfo();
  const startedAt = new Date().toISOString();
  const runs: RunResult[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const source of ['simulator', 'redis'] as const) {
      log(`round ${round}: ${source}`);
      runs.push(await runOnce(source, round, opts, log));
      // Let the sockets of the last run leave and the CPU settle before the next.
      await sleep(500);
    }
  }
  const rows = runs.map(rowOf);
  const lines = summary(rows);
  const path = writeJsonResult('redis-source', {
    benchmark: 'redis-source',
    startedAt,
    elapsedS: (performance.now() - started) / 1000,
    machine,
    loadAverageAtEnd: machineInfo().loadAverage,
    options: {
      ...opts,
      products: PRODUCTS,
      channels: CHANNELS,
      seed: SEED,
      publishMaxLen: PUBLISH_MAXLEN,
      publishSnapshotMs: PUBLISH_SNAPSHOT_MS,
    },
    summary: lines.map(({ metric, simulator, redis }) => ({
      metric,
      simulator,
      redis,
      ratio: simulator === 0 ? null : redis / simulator,
    })),
    runs: runs.map((run, i) => ({
      summary: rows[i],
      load: totalsOf(run.load, 'fast'),
      probe: totalsOf([run.probe], 'fast'),
      generators: [...run.load, run.probe].map((r) => ({
        label: r.label,
        windowMs: r.windowMs,
        eventLoopUtilization: r.eventLoopUtilization,
        cpuCores: r.cpuCores,
      })),
      windowMs: run.windowMs,
      gateway: run.gateway,
      publisher: run.publisher,
      redis: run.redis,
      otherCpuCores: run.otherCpuCores,
    })),
  });
  console.log(runsTable(rows));
  console.log();
  console.log(summaryTable(lines));
  console.log();
  for (const [i, row] of rows.entries()) {
    const notes: string[] = [];
    if (Object.keys(row.unexpectedCloses).length > 0)
      notes.push(`connections closed during the run: ${fmt.counts(row.unexpectedCloses)}`);
    if (row.gatewayInvalidEvents > 0)
      notes.push(`gateway rejected feed events: ${fmt.counts(runs[i]!.gateway.invalidEvents)}`);
    if (row.publisherWarnings > 0) notes.push(`publisher logged ${row.publisherWarnings} warning(s)`);
    if (row.negativeLatencies > 0) notes.push(`${row.negativeLatencies} negative latencies (clock skew)`);
    const contention = contentionNote(row.otherCpuCores);
    if (contention) notes.push(contention);
    if (notes.length > 0) console.log(`- run ${i + 1} (${row.source}): ${notes.join('; ')}`);
  }
  console.log(`Results: ${path}`);
  if (opts.smoke) console.log('(smoke run: too short to compare anything)');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
