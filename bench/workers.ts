/**
 * Benchmark: the same load against WS_WORKER_THREADS = 0, 1, 2 (by default), one fresh gateway each.
 *
 * Load: the built-in simulator at --rate events/s on each of 4 products; --connections connections
 * from 2 load-client processes, each subscribed to level2 + matches + ticker on every product.
 * After --warmup seconds the clients count for --duration seconds. Reported per thread count:
 * delivered messages/s, messages per CPU-second of the gateway process (all its threads), latency
 * (feed event time to client receipt) p50/p99, level2 sequence gaps, peak RSS, and the load
 * clients' event-loop utilisation: above 0.9 the generator, not the gateway, sets the pace and the
 * row is flagged "generator saturated". "other procs CPU" is what the rest of the machine used
 * during the window. Nothing here asserts a time: it measures and reports.
 *
 * On a small machine the load clients, not the gateway, run out of CPU first: a Node ws client
 * spends several times more CPU per message than the gateway does, so with 2 cores the gateway
 * cannot be driven to saturation from the same machine. Compare msgs / gateway CPU-s across rows,
 * and raise --rate or --connections on a bigger machine (watch the generator ELU).
 *
 *   npm run bench:workers -- [--duration 20] [--warmup 5] [--connections 500] [--rate 30]
 *                            [--threads 0,1,2] [--clients 2] [--smoke]
 *
 * Prints a markdown table and writes bench/out/workers-<timestamp>.json.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  contentionNote,
  fmt,
  generatorLoad,
  machineInfo,
  markdownTable,
  sleep,
  totalsOf,
  writeJsonResult,
} from './lib/report.js';
import { runScenario, type ScenarioResult } from './lib/scenario.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC'];
const CHANNELS = ['level2', 'matches', 'ticker'];

const HELP = `Usage: npm run bench:workers -- [options]
  --duration <s>      measured seconds per thread count (default 20; smoke 2)
  --warmup <s>        unmeasured seconds before each window (default 5; smoke 1)
  --connections <n>   connections in total (default 500; smoke 100)
  --rate <n>          SIM_EVENTS_PER_SEC per product (default 30)
  --threads <list>    WS_WORKER_THREADS values, comma-separated (default 0,1,2)
  --clients <n>       load-client processes (default 2)
  --smoke             a few seconds in total: checks the benchmark works, measures nothing useful`;

interface Options {
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly rate: number;
  readonly threads: readonly number[];
  readonly clients: number;
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
      threads: { type: 'string' },
      clients: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return undefined;
  }
  const smoke = values.smoke === true;
  const threads = (values.threads ?? '0,1,2').split(',').map((t) => Number(t.trim()));
  if (threads.some((t) => !Number.isInteger(t) || t < 0 || t > 64))
    throw new Error(`--threads must list integers from 0 to 64, got ${values.threads}`);
  return {
    durationS: positive('duration', values.duration, smoke ? 2 : 20),
    warmupS: positive('warmup', values.warmup, smoke ? 1 : 5),
    connections: Math.round(positive('connections', values.connections, smoke ? 100 : 500)),
    rate: positive('rate', values.rate, 30),
    threads,
    clients: Math.round(positive('clients', values.clients, 2)),
    smoke,
  };
}

interface Row {
  readonly threads: number;
  readonly deliveredPerSecond: number;
  readonly serverCpuCores: number;
  readonly messagesPerCpuSecond: number;
  readonly serverSentPerSecond: number;
  readonly latency: { readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number };
  readonly gaps: number;
  readonly resnapshots: number;
  readonly unexpectedCloses: Readonly<Record<string, number>>;
  readonly peakRssBytes: number;
  readonly generatorElu: number;
  readonly generatorSaturated: boolean;
  readonly otherCpuCores: number;
}

function rowOf(threads: number, result: ScenarioResult): Row {
  const fast = totalsOf(result.reports, 'fast');
  const load = generatorLoad(result.reports);
  const windowSeconds = result.serverWindowMs / 1000;
  return {
    threads,
    deliveredPerSecond: fast.messagesPerSecond,
    serverCpuCores: result.serverCpuSeconds / windowSeconds,
    // Delivered rate over the gateway's CPU rate: the two windows need not start at the same instant.
    messagesPerCpuSecond: fast.messagesPerSecond / (result.serverCpuSeconds / windowSeconds),
    serverSentPerSecond: result.serverMessagesSent / windowSeconds,
    latency: { p50Ms: fast.latency.p50Ms, p99Ms: fast.latency.p99Ms, maxMs: fast.latency.maxMs },
    gaps: fast.gaps,
    resnapshots: fast.resnapshots,
    unexpectedCloses: fast.closes,
    peakRssBytes: result.peakRssBytes,
    generatorElu: load.maxElu,
    generatorSaturated: load.saturated,
    otherCpuCores: result.otherCpuCores,
  };
}

function table(rows: readonly Row[]): string {
  return markdownTable(
    [
      'WS_WORKER_THREADS',
      'delivered msg/s',
      'gateway CPU (cores)',
      'msgs / gateway CPU-s',
      'p50 ms',
      'p99 ms',
      'gaps',
      'resnapshots',
      'peak RSS MB',
      'generator ELU',
      'other procs CPU',
    ],
    rows.map((r) => [
      String(r.threads),
      fmt.int(r.deliveredPerSecond),
      fmt.fixed(r.serverCpuCores),
      fmt.int(r.messagesPerCpuSecond),
      fmt.ms(r.latency.p50Ms),
      fmt.ms(r.latency.p99Ms),
      String(r.gaps),
      String(r.resnapshots),
      fmt.mb(r.peakRssBytes),
      `${fmt.fixed(r.generatorElu)}${r.generatorSaturated ? ' (generator saturated)' : ''}`,
      fmt.fixed(r.otherCpuCores),
    ]),
  );
}

async function main(): Promise<void> {
  const opts = options();
  if (!opts) return;
  const started = performance.now();
  const log = (line: string) =>
    process.stderr.write(`[bench:workers +${((performance.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
  log(
    `${opts.connections} connections from ${opts.clients} processes, ${opts.rate} events/s on each of ` +
      `${PRODUCTS.length} products, ${opts.warmupS} s warm-up + ${opts.durationS} s per thread count`,
  );
  const machine = machineInfo();
  const runs: Array<{ threads: number; row: Row; result: ScenarioResult }> = [];
  for (const threads of opts.threads) {
    log(`WS_WORKER_THREADS=${threads}`);
    const result = await runScenario(
      {
        gatewayEnv: {
          WS_WORKER_THREADS: String(threads),
          SIM_EVENTS_PER_SEC: String(opts.rate),
          SIM_SEED: '7',
        },
        productIds: PRODUCTS,
        channels: CHANNELS,
        clientProcesses: opts.clients,
        fastConnections: opts.connections,
        stalledConnections: 0,
        warmupMs: opts.warmupS * 1000,
        durationMs: opts.durationS * 1000,
        sampleIntervalMs: 500,
      },
      log,
    );
    runs.push({ threads, row: rowOf(threads, result), result });
    // Let the sockets of the last run leave TIME_WAIT churn and the CPU settle before the next.
    await sleep(500);
  }
  const rows = runs.map((r) => r.row);
  const path = writeJsonResult('workers', {
    benchmark: 'workers',
    startedAt: new Date().toISOString(),
    machine,
    loadAverageAtEnd: machineInfo().loadAverage,
    options: { ...opts, products: PRODUCTS, channels: CHANNELS },
    runs: runs.map(({ threads, row, result }) => ({
      threads,
      summary: row,
      fast: totalsOf(result.reports, 'fast'),
      generators: result.reports.map((r) => ({
        label: r.label,
        windowMs: r.windowMs,
        eventLoopUtilization: r.eventLoopUtilization,
        cpuCores: r.cpuCores,
      })),
      gateway: {
        windowMs: result.serverWindowMs,
        cpuSeconds: result.serverCpuSeconds,
        otherCpuCores: result.otherCpuCores,
        messagesSent: result.serverMessagesSent,
        connectedRssBytes: result.connectedRssBytes,
        peakRssBytes: result.peakRssBytes,
        slowDisconnectsByReason: result.slowDisconnectsByReason,
        conflatedByChannel: result.conflatedByChannel,
        exit: result.gatewayExit,
        samplerFailures: result.samplerFailures,
        series: result.series,
      },
    })),
  });
  console.log(table(rows));
  console.log();
  for (const row of rows) {
    const notes: string[] = [];
    if (Object.keys(row.unexpectedCloses).length > 0)
      notes.push(`connections closed during the run: ${fmt.counts(row.unexpectedCloses)}`);
    if (row.serverSentPerSecond > row.deliveredPerSecond * 1.05)
      notes.push(
        `gateway handed ${fmt.int(row.serverSentPerSecond)} msg/s to sockets, clients read ${fmt.int(row.deliveredPerSecond)}`,
      );
    const contention = contentionNote(row.otherCpuCores);
    if (contention) notes.push(contention);
    if (notes.length > 0) console.log(`- WS_WORKER_THREADS=${row.threads}: ${notes.join('; ')}`);
  }
  console.log(`Results: ${path}`);
  if (opts.smoke) console.log('(smoke run: too short to compare anything)');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
