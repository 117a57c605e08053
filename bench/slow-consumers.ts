/**
 * Benchmark: what stalled clients cost the fast ones, and the gateway's memory.
 *
 * Two phases, one fresh gateway each, same fast feed (--rate events/s on each of 4 products):
 *   fast only       --fast connections that read everything;
 *   fast + stalled  the same, plus --stalled connections that connect when the measurement window
 *                   starts, subscribe and pause their TCP socket at once (they never read; the
 *                   gateway's buffers for them fill until flow control takes over and cuts them off).
 * All are subscribed to level2 + matches + ticker on every product. For the fast clients: delivered
 * messages/s, latency (feed event time to receipt) percentiles overall and per second of the window,
 * level2 gaps and resnapshots; for the gateway: peak RSS, and ws_message_queue_size and
 * ws_slow_consumers sampled every 200 ms (the whole series is in the JSON; the table shows
 * min/max/last over the window). "other processes CPU" is what the rest of the machine used meanwhile.
 *
 * WS_WORKER_THREADS=0: the README's recommendation for a machine with one or two cores (the one it
 * was written on has two, shared with the load clients), and flow control runs per thread the same
 * way, so one thread shows all of it; a worker would only add a thread hop to every message.
 *
 *   npm run bench:slow -- [--duration 20] [--warmup 3] [--fast 20] [--stalled 20] [--rate 500] [--smoke]
 *
 * Prints a markdown table and writes bench/out/slow-consumers-<timestamp>.json. Asserts nothing.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Timed } from './lib/gateway-process.js';
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
import { type GatewaySample, runScenario, type ScenarioResult } from './lib/scenario.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC'];
const CHANNELS = ['level2', 'matches', 'ticker'];
const SAMPLE_INTERVAL_MS = 200;
const WORKER_THREADS = 0;

const HELP = `Usage: npm run bench:slow -- [options]
  --duration <s>   measured seconds per phase (default 20; smoke 4)
  --warmup <s>     unmeasured seconds before each window (default 3; smoke 1)
  --fast <n>       connections that read everything (default 20; smoke 10)
  --stalled <n>    connections that stop reading, second phase only (default 20; smoke 10)
  --rate <n>       SIM_EVENTS_PER_SEC per product (default 500; smoke 1000)
  --smoke          a few seconds in total: checks the benchmark works, measures nothing useful`;

interface Options {
  readonly durationS: number;
  readonly warmupS: number;
  readonly fast: number;
  readonly stalled: number;
  readonly rate: number;
  readonly smoke: boolean;
}

function number(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min)
    throw new Error(`--${name} must be a number >= ${min}, got ${raw}`);
  return value;
}

function options(): Options | undefined {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      fast: { type: 'string' },
      stalled: { type: 'string' },
      rate: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return undefined;
  }
  const smoke = values.smoke === true;
  return {
    durationS: number('duration', values.duration, smoke ? 4 : 20, 0.5),
    warmupS: number('warmup', values.warmup, smoke ? 1 : 3, 0),
    fast: Math.round(number('fast', values.fast, smoke ? 10 : 20, 1)),
    stalled: Math.round(number('stalled', values.stalled, smoke ? 10 : 20, 1)),
    // Smoke: a faster feed, so the stalled connections' kernel buffers fill within its short window.
    rate: number('rate', values.rate, smoke ? 1000 : 500, 0.1),
    smoke,
  };
}

interface Range {
  readonly min: number;
  readonly max: number;
  readonly last: number;
}

/** min/max/last of one field over the samples taken inside the window. */
function rangeOf(
  result: ScenarioResult,
  pick: (sample: GatewaySample) => number,
): { readonly window: Range; readonly samples: number } {
  const { fromMs, toMs } = result.window;
  const inWindow = result.series.filter((s) => s.atMs >= fromMs && s.atMs <= toMs).map((s) => pick(s.value));
  if (inWindow.length === 0)
    return { window: { min: Number.NaN, max: Number.NaN, last: Number.NaN }, samples: 0 };
  return {
    window: { min: Math.min(...inWindow), max: Math.max(...inWindow), last: inWindow[inWindow.length - 1]! },
    samples: inWindow.length,
  };
}

interface Phase {
  readonly name: string;
  readonly result: ScenarioResult;
  readonly fast: GroupTotals;
  readonly stalledTotals: GroupTotals;
  readonly queue: Range;
  readonly slowConsumers: Range;
  readonly samplesInWindow: number;
}

function phaseOf(name: string, result: ScenarioResult): Phase {
  const queue = rangeOf(result, (s) => s.queueSize);
  return {
    name,
    result,
    fast: totalsOf(result.reports, 'fast'),
    stalledTotals: totalsOf(result.reports, 'stalled'),
    queue: queue.window,
    slowConsumers: rangeOf(result, (s) => s.slowConsumers).window,
    samplesInWindow: queue.samples,
  };
}

const range = (r: Range) => `${fmt.int(r.min)} / ${fmt.int(r.max)} / ${fmt.int(r.last)}`;

function table(phases: readonly Phase[]): string {
  const row = (label: string, cell: (p: Phase) => string) => [label, ...phases.map(cell)];
  return markdownTable(
    ['', ...phases.map((p) => p.name)],
    [
      row('connections (fast + stalled)', (p) => `${p.fast.connections} + ${p.stalledTotals.connections}`),
      row('fast: delivered msg/s', (p) => fmt.int(p.fast.messagesPerSecond)),
      row('fast: latency p50 / p90 / p99 ms', (p) =>
        [p.fast.latency.p50Ms, p.fast.latency.p90Ms, p.fast.latency.p99Ms].map(fmt.ms).join(' / '),
      ),
      row('fast: latency max ms', (p) => fmt.ms(p.fast.latency.maxMs)),
      row('fast: worst one-second p99 ms (at second)', (p) => {
        const seconds = p.fast.latencyBySecond;
        const worst = seconds.reduce((w, s, i) => (s.p99Ms > (seconds[w]?.p99Ms ?? -1) ? i : w), 0);
        return seconds.length === 0 ? 'n/a' : `${fmt.ms(seconds[worst]!.p99Ms)} (${worst})`;
      }),
      row('fast: level2 gaps / resnapshots', (p) => `${p.fast.gaps} / ${p.fast.resnapshots}`),
      row('fast: closed', (p) => fmt.counts(p.fast.closes)),
      row('gateway CPU (cores)', (p) =>
        fmt.fixed(p.result.serverCpuSeconds / (p.result.serverWindowMs / 1000)),
      ),
      row(
        'gateway RSS MB: subscribed / peak',
        (p) => `${fmt.mb(p.result.connectedRssBytes)} / ${fmt.mb(p.result.peakRssBytes)}`,
      ),
      row('ws_message_queue_size min / max / last', (p) => range(p.queue)),
      row('ws_slow_consumers min / max / last', (p) => range(p.slowConsumers)),
      row('slow-consumer disconnects', (p) => fmt.counts(p.result.slowDisconnectsByReason)),
      // Only the subscribed channels: the hub also merges level2_batch/ticker_batch, subscribers or not.
      row('messages conflated (subscribed channels)', (p) =>
        fmt.counts(
          Object.fromEntries(
            Object.entries(p.result.conflatedByChannel).filter(([channel]) => CHANNELS.includes(channel)),
          ),
        ),
      ),
      row('generator ELU (max)', (p) => {
        const load = generatorLoad(p.result.reports);
        return `${fmt.fixed(load.maxElu)}${load.saturated ? ' (generator saturated)' : ''}`;
      }),
      row('other processes CPU (cores)', (p) => fmt.fixed(p.result.otherCpuCores)),
    ],
  );
}

async function main(): Promise<void> {
  const opts = options();
  if (!opts) return;
  const started = performance.now();
  const log = (line: string) =>
    process.stderr.write(`[bench:slow +${((performance.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
  const plan = [
    { name: 'fast only', stalled: 0 },
    { name: 'fast + stalled', stalled: opts.stalled },
  ];
  const machine = machineInfo();
  const phases: Phase[] = [];
  for (const { name, stalled } of plan) {
    log(
      `${name}: ${opts.fast} fast + ${stalled} stalled, ${opts.rate} events/s on each of ${PRODUCTS.length} products`,
    );
    const result = await runScenario(
      {
        gatewayEnv: {
          WS_WORKER_THREADS: String(WORKER_THREADS),
          SIM_EVENTS_PER_SEC: String(opts.rate),
          SIM_SEED: '7',
        },
        productIds: PRODUCTS,
        channels: CHANNELS,
        clientProcesses: 2,
        fastConnections: opts.fast,
        stalledConnections: stalled,
        warmupMs: opts.warmupS * 1000,
        durationMs: opts.durationS * 1000,
        sampleIntervalMs: SAMPLE_INTERVAL_MS,
      },
      log,
    );
    phases.push(phaseOf(name, result));
    await sleep(500);
  }
  const path = writeJsonResult('slow-consumers', {
    benchmark: 'slow-consumers',
    startedAt: new Date().toISOString(),
    machine,
    loadAverageAtEnd: machineInfo().loadAverage,
    options: { ...opts, workerThreads: WORKER_THREADS, products: PRODUCTS, channels: CHANNELS },
    phases: phases.map((p) => ({
      name: p.name,
      fast: p.fast,
      stalled: p.stalledTotals,
      generators: p.result.reports.map((r) => ({
        label: r.label,
        windowMs: r.windowMs,
        eventLoopUtilization: r.eventLoopUtilization,
        cpuCores: r.cpuCores,
      })),
      gateway: {
        windowMs: p.result.serverWindowMs,
        cpuSeconds: p.result.serverCpuSeconds,
        otherCpuCores: p.result.otherCpuCores,
        messagesSent: p.result.serverMessagesSent,
        connectedRssBytes: p.result.connectedRssBytes,
        peakRssBytes: p.result.peakRssBytes,
        queueSizeInWindow: p.queue,
        slowConsumersInWindow: p.slowConsumers,
        slowDisconnectsByReason: p.result.slowDisconnectsByReason,
        conflatedByChannel: p.result.conflatedByChannel,
        exit: p.result.gatewayExit,
        samplerFailures: p.result.samplerFailures,
        sampleIntervalMs: SAMPLE_INTERVAL_MS,
        window: p.result.window,
        series: p.result.series satisfies ReadonlyArray<Timed<GatewaySample>>,
      },
    })),
  });
  console.log(table(phases));
  console.log();
  console.log(
    `ws_message_queue_size / ws_slow_consumers: min / max / last of ${phases.map((p) => p.samplesInWindow).join(' and ')} ` +
      `samples (every ${SAMPLE_INTERVAL_MS} ms) in the window; the full series is in the JSON.`,
  );
  for (const phase of phases) {
    const contention = contentionNote(phase.result.otherCpuCores);
    if (contention) console.log(`- ${phase.name}: ${contention}`);
  }
  console.log(`Results: ${path}`);
  if (opts.smoke) console.log('(smoke run: too short to compare anything)');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
