/**
 * Soak: one gateway with worker threads under mixed load and upstream faults for a long time
 * (30 minutes by default), to show that nothing leaks and that clients' books stay exact.
 *
 * It runs a redis-server of its own (free port, append-only file), the publisher
 * (`node dist/src/main.js publish`) writing into it, and the gateway as users run it
 * (`node --max-semi-space-size=4 dist/src/main.js`, FEED_SOURCE=redis, WS_WORKER_THREADS=2), plus
 * the worker-fault-hook preload so that a worker thread can be made to fail from outside. From
 * this process: steady subscribers keeping books (soak-steady.ts), connection churn, stalled
 * clients and hostile clients (soak-churn.ts, soak-stalls.ts, soak-hostile.ts); Redis killed and
 * restarted, the publisher restarted and a worker failed on a schedule (soak-faults.ts), none in
 * the last part of the run. Every --interval seconds it prints a row of the gateway's figures.
 *
 * At the end: churn, stalls and hostile clients stop, the publisher stops (so that the books come
 * to rest), and the verdict is printed: growth of RSS and of descriptors (minus the open
 * connections) after the warm-up, ws_active_connections equal to the clients still connected,
 * every steady client's book equal to the REST book at the same sequence, no level2 or trade_id
 * gap outside a resync. The exit code is 1 only if a correctness criterion fails, or growth is
 * judged (post-warm-up span of MIN_JUDGED_SPAN_MS or more) and fails. Nothing here asserts a time.
 *
 *   npm run soak -- [--duration 1800] [--warmup 300] [--smoke] [--help]
 *
 * Writes bench/out/soak-<timestamp>.json.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { OptionErrors } from './lib/cli.js';
import { GatewayProcess, MetricsSampler, type PromMetrics } from './lib/gateway-process.js';
import { fmt, machineInfo, markdownTable, sleep, writeJsonResult } from './lib/report.js';
import { ONE_IP_LIMITS } from './lib/scenario.js';
import { churn } from './lib/soak-churn.js';
import { type FaultKind, type FaultRecord, runFault, Upstream, waitUntilReady } from './lib/soak-faults.js';
import { HOSTILE_KINDS, hostile } from './lib/soak-hostile.js';
import type { Pacer } from './lib/soak-pacer.js';
import { ROW_HEADERS, row, type SoakSample, soakSampleOf } from './lib/soak-sample.js';
import { connectionsSettle, restingBooks, SETTLE_TIMEOUT_MS } from './lib/soak-settle.js';
import { stalls } from './lib/soak-stalls.js';
import { SteadySubscriber } from './lib/soak-steady.js';
import { type Criterion, check, growthCriterion, growthOf } from './lib/soak-verdict.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC'];
const WORKER_THREADS = 2;
const HOOK = fileURLToPath(new URL('./lib/worker-fault-hook.js', import.meta.url));
const SNAPSHOT_HOOK = fileURLToPath(new URL('./lib/heap-snapshot-hook.js', import.meta.url));
/**
 * Growth limits after the warm-up (soak-verdict.ts says how they are judged). With the default
 * churn (5 connections/s, 18,000 an hour) 20 MB/hour is about 1.1 KB left behind per connection;
 * 10 descriptors an hour, one left open in 1,800 connections or by a few of the upstream restarts.
 */
const RSS_LIMIT_BYTES_PER_HOUR = 20 * 1024 * 1024;
const FD_LIMIT_PER_HOUR = 10;

const HELP = `Usage: npm run soak -- [options]
  --duration <s>       seconds of load in total, warm-up included (default 1800; smoke 60)
  --warmup <s>         seconds not used for the growth figures (default 300; smoke 15)
  --interval <s>       seconds between printed rows (default 10)
  --steady <n>         steady subscribers keeping books (default 12; smoke 6)
  --rate <n>           publisher events per second per product (default 50; smoke 100)
  --churn <n>          churn connections started per second (default 5)
  --stall-every <s>    a stalled client every this many seconds (default 30; smoke 8)
  --stall-hold <s>     how long a stalled client does not read (default 90; smoke 45): longer
                       than the gateway takes to cut it off (kernel buffers fill first)
  --hostile-every <s>  a hostile client every this many seconds (default 5; smoke 2)
  --redis-every <s>    Redis killed and restarted every this many seconds (default 420; smoke: once)
  --publisher-every <s> the publisher restarted every this many seconds (default 300; smoke: once)
  --smoke              one minute: checks the soak works; growth is reported, not judged
  --heap-snapshots     the gateway also runs with the heap-snapshot-hook preload: send it SIGURG
                       for heap snapshots of every thread (in the working directory)
Growth (RSS, descriptors) is judged only when the run after the warm-up lasts 10 minutes or more.`;

interface Options {
  readonly smoke: boolean;
  /** The gateway also gets the heap-snapshot-hook preload (SIGURG: heap snapshots). */
  readonly heapSnapshots: boolean;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly intervalMs: number;
  readonly steady: number;
  readonly rate: number;
  readonly churnPerSecond: number;
  readonly stallEveryMs: number;
  readonly stallHoldMs: number;
  readonly hostileEveryMs: number;
  readonly redisEveryMs: number;
  readonly publisherEveryMs: number;
}

function options(): Options | undefined {
  const names = [
    'duration',
    'warmup',
    'interval',
    'steady',
    'rate',
    'churn',
    'stall-every',
    'stall-hold',
    'hostile-every',
    'redis-every',
    'publisher-every',
  ] as const;
  const { values } = parseArgs({
    options: {
      ...(Object.fromEntries(names.map((n) => [n, { type: 'string' }])) as Record<
        (typeof names)[number],
        { type: 'string' }
      >),
      smoke: { type: 'boolean', default: false },
      'heap-snapshots': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return undefined;
  }
  const smoke = values.smoke === true;
  const errors = new OptionErrors();
  const get = (name: (typeof names)[number], full: number, short = full) =>
    errors.positive(name, values[name], smoke ? short : full);
  const durationMs = get('duration', 1800, 60) * 1000;
  const opts: Options = {
    smoke,
    heapSnapshots: values['heap-snapshots'] === true,
    durationMs,
    warmupMs: get('warmup', 300, 15) * 1000,
    intervalMs: get('interval', 10) * 1000,
    steady: Math.round(get('steady', 12, 6)),
    rate: get('rate', 50, 100),
    churnPerSecond: get('churn', 5),
    stallEveryMs: get('stall-every', 30, 8) * 1000,
    stallHoldMs: get('stall-hold', 90, 45) * 1000,
    hostileEveryMs: get('hostile-every', 5, 2) * 1000,
    // Smoke: each fault once (the schedule places them in the middle of the run).
    redisEveryMs: get('redis-every', 420, durationMs / 1000) * 1000,
    publisherEveryMs: get('publisher-every', 300, durationMs / 1000) * 1000,
  };
  errors.throwIfAny();
  if (opts.warmupMs >= opts.durationMs) throw new Error('--warmup must be shorter than --duration');
  return opts;
}

/**
 * The faults and when: none in the first `start` of the run or its last `quiet`. Redis from
 * `start`, the publisher half a period later, one worker fault in the middle of the run.
 */
function schedule(opts: Options): Array<{ readonly atMs: number; readonly kind: FaultKind }> {
  const start = Math.min(opts.warmupMs, opts.durationMs / 4);
  const quietFrom = opts.durationMs - Math.max(20_000, opts.durationMs / 15);
  const plan: Array<{ atMs: number; kind: FaultKind }> = [{ atMs: opts.durationMs / 2, kind: 'worker' }];
  const every = (kind: FaultKind, periodMs: number, firstMs: number) => {
    for (let at = firstMs; at < quietFrom; at += periodMs) plan.push({ atMs: at, kind });
  };
  const span = quietFrom - start;
  every('redis', opts.redisEveryMs, start + Math.min(opts.redisEveryMs, span) / 6);
  every('publisher', opts.publisherEveryMs, start + Math.min(opts.publisherEveryMs, span) * (2 / 3));
  return plan.sort((a, b) => a.atMs - b.atMs);
}

const summed = (records: ReadonlyArray<Readonly<Record<string, number>>>) => {
  const out: Record<string, number> = {};
  for (const record of records) for (const [key, n] of Object.entries(record)) out[key] = (out[key] ?? 0) + n;
  return out;
};

const byLabel = (metrics: PromMetrics, name: string, label: string) =>
  Object.fromEntries(
    metrics.samples
      .filter((s) => s.name === name && s.value > 0)
      .map((s) => [s.labels[label] ?? '', s.value]),
  );

async function main(): Promise<void> {
  const opts = options();
  if (!opts) return;
  const began = performance.now();
  const log = (line: string) =>
    process.stderr.write(`[soak +${((performance.now() - began) / 1000).toFixed(1)}s] ${line}\n`);
  const machine = machineInfo();
  const publisherEnv = { PRODUCTS: PRODUCTS.join(','), SIM_EVENTS_PER_SEC: String(opts.rate) };
  const upstream = await Upstream.start(publisherEnv);
  let gateway: GatewayProcess | undefined;
  const steady: SteadySubscriber[] = [];
  const pacers: Pacer[] = [];
  try {
    gateway = await GatewayProcess.start(
      {
        ...ONE_IP_LIMITS,
        PRODUCTS: PRODUCTS.join(','),
        FEED_SOURCE: 'redis',
        REDIS_URL: upstream.redis.url,
        WS_WORKER_THREADS: String(WORKER_THREADS),
        // Every l2update on level2, so a client can check that sequences are consecutive.
        WS_THROTTLE_MS: '0',
      },
      20_000,
      ['--import', HOOK, ...(opts.heapSnapshots ? ['--import', SNAPSHOT_HOOK] : [])],
    );
    const gw = gateway;
    log(
      `redis-server pid ${upstream.redis.pid} on port ${upstream.redis.port}; publisher pid ${upstream.publisher.pid}`,
    );
    log(`gateway pid ${gw.pid} on port ${gw.port}, ${WORKER_THREADS} worker threads; waiting for /readyz`);
    if (!Number.isFinite(await waitUntilReady(gw))) throw new Error('the gateway never became ready');

    const churnLoad = churn(gw.wsUrl, PRODUCTS, opts.churnPerSecond);
    const stallLoad = stalls(gw.wsUrl, PRODUCTS, opts.stallEveryMs, opts.stallHoldMs);
    const hostileLoad = hostile(gw.wsUrl, opts.hostileEveryMs);
    pacers.push(churnLoad.pacer, stallLoad.pacer, hostileLoad.pacer);
    const soakConnections = () =>
      steady.filter((s) => s.open).length + pacers.reduce((sum, p) => sum + p.running, 0);
    const reconnects = () => steady.reduce((sum, s) => sum + s.tally.reconnects, 0);

    console.log(`\n${markdownTable(ROW_HEADERS, [])}`);
    const sampler = new MetricsSampler<SoakSample>(
      gw,
      opts.intervalMs,
      (metrics) =>
        soakSampleOf(metrics, gw.pid, { soakConnections: soakConnections(), steadyReconnects: reconnects() }),
      (sample) => console.log(markdownTable(ROW_HEADERS, [row(sample)]).split('\n')[2]),
    );

    for (let i = 0; i < opts.steady; i++) steady.push(new SteadySubscriber(gw.wsUrl, PRODUCTS));
    const booksReady = Promise.all(steady.map((s) => s.start())).then(() => true);
    if (!(await Promise.race([booksReady, sleep(SETTLE_TIMEOUT_MS).then(() => false)])))
      throw new Error(
        `the steady subscribers did not all get their snapshots within ${SETTLE_TIMEOUT_MS} ms`,
      );
    log(`${opts.steady} steady subscribers have their books; churn, stalls and hostile clients start`);
    for (const pacer of pacers) pacer.start();

    const faults: FaultRecord[] = [];
    for (const planned of schedule(opts)) {
      const wait = planned.atMs - sampler.elapsedMs();
      if (wait > 0) await sleep(wait);
      const record = await runFault(planned.kind, upstream, gw, sampler.elapsedMs());
      faults.push(record);
      log(`fault: ${record.kind} (${record.how}); recovered in ${fmt.int(record.recoveryMs)} ms`);
    }
    const left = opts.durationMs - sampler.elapsedMs();
    if (left > 0) await sleep(left);

    log('stopping churn, stalls and hostile clients, then the publisher; the books come to rest');
    await Promise.all(pacers.map((p) => p.stop()));
    await upstream.publisher.stop();
    const rest = await restingBooks(gw, PRODUCTS);
    const connections = await connectionsSettle(gw, () => steady.filter((s) => s.open).length);
    const bookDifferences: string[] = [];
    for (const subscriber of steady) {
      for (const [id, book] of rest) {
        await subscriber.reached(id, book.sequence, SETTLE_TIMEOUT_MS);
        const difference = subscriber.differenceFrom(id, book);
        if (difference) bookDifferences.push(difference);
      }
    }
    const final = await gw.scrape();
    const series = await sampler.stop();
    await Promise.all(steady.map((s) => s.stop()));
    const gatewayExit = await gw.stop();
    gateway = undefined;

    const after = series.filter((s) => s.atMs >= opts.warmupMs);
    const rss = growthOf(after.map((s) => ({ atMs: s.atMs, value: s.value.rssBytes })));
    // A descriptor per open connection is no leak; what else is open should stay flat.
    const fds = growthOf(
      after.map((s) => ({ atMs: s.atMs, value: s.value.fds - s.value.activeConnections })),
    );
    const steadyTotals = steady.map((s) => s.tally);
    const sum = (pick: (t: SteadySubscriber['tally']) => number) =>
      steadyTotals.reduce((total, t) => total + pick(t), 0);
    const problems = steadyTotals.flatMap((t) => t.problems).slice(0, 20);
    const hostileMismatches = HOSTILE_KINDS.flatMap((kind) =>
      Object.entries(hostileLoad.tally.answers[kind.name] ?? {})
        .filter(([answer]) => answer !== kind.expected)
        .map(([answer, n]) => `${kind.name}: ${answer} ×${n} (expected ${kind.expected})`),
    );
    const stallsHeld = Object.entries(stallLoad.tally.outcomes)
      .filter(([outcome]) => outcome !== 'ended early')
      .reduce((total, [, n]) => total + n, 0);
    const slowCutOffs = final.value('ws_disconnections_total', { reason: 'slow_consumer' }) ?? 0;
    const pacerFailures = pacers.filter((p) => p.failed > 0).map((p) => `${p.failed}: ${p.lastFailure}`);
    const verdict: Criterion[] = [
      growthCriterion('RSS growth after warm-up', rss, RSS_LIMIT_BYTES_PER_HOUR, 'MB', 1024 * 1024),
      growthCriterion('descriptor growth after warm-up (fds - connections)', fds, FD_LIMIT_PER_HOUR, 'fds'),
      check(
        'ws_active_connections back to the clients still connected',
        connections.value === connections.expected,
        `${connections.value} reported, ${connections.expected} connected (steady subscribers), settled in ${fmt.int(connections.ms)} ms`,
      ),
      check(
        "every steady client's book equals REST at the same sequence",
        bookDifferences.length === 0,
        `${steady.length * rest.size - bookDifferences.length} of ${steady.length * rest.size} books equal` +
          (bookDifferences.length ? `; ${bookDifferences.slice(0, 5).join('; ')}` : ''),
      ),
      check(
        'no level2 gap outside a resync, no crossed book, no invalid frame',
        sum((t) => t.bookGaps + t.crossedBooks + t.invalidFrames) === 0,
        `${sum((t) => t.bookGaps)} gaps, ${sum((t) => t.crossedBooks)} crossed, ${sum((t) => t.invalidFrames)} invalid; ` +
          `${sum((t) => t.resnapshots)} fresh snapshots (resyncs) seen by steady clients`,
      ),
      check(
        'no trade_id gap outside a resync',
        sum((t) => t.tradeGaps) === 0,
        `${sum((t) => t.tradeGaps)} gaps`,
      ),
      check(
        'the gateway ran throughout and exited cleanly',
        gatewayExit.code === 0,
        `exit code ${gatewayExit.code}${gatewayExit.signal ? `, signal ${gatewayExit.signal}` : ''}`,
      ),
      check(
        'stalled clients cut off by the gateway (slow_consumer)',
        stallsHeld > 0 && slowCutOffs >= stallsHeld,
        `${slowCutOffs} slow_consumer disconnections for ${stallsHeld} stalled clients held to the end; ` +
          `seen by them on reading again: ${fmt.counts(stallLoad.tally.outcomes)}`,
        false,
      ),
      check(
        'hostile clients answered as the protocol says',
        hostileMismatches.length === 0,
        hostileMismatches.length
          ? hostileMismatches.join('; ')
          : `${hostileLoad.pacer.started} clients, all as expected`,
        false,
      ),
      check(
        'every fault recovered',
        faults.length > 0 && faults.every((f) => Number.isFinite(f.recoveryMs)),
        faults.map((f) => `${f.kind} ${fmt.int(f.recoveryMs)} ms`).join(', '),
        false,
      ),
      check(
        'the soak itself ran without errors',
        pacerFailures.length === 0,
        pacerFailures.join('; ') || 'none',
        false,
      ),
    ];

    console.log(
      `\nFaults:\n${markdownTable(
        ['at s', 'fault', 'how', 'recovered in ms'],
        faults.map((f) => [(f.atMs / 1000).toFixed(0), f.kind, f.how, fmt.int(f.recoveryMs)]),
      )}`,
    );
    console.log(
      `\nLoad: steady ${opts.steady} (connects ${sum((t) => t.connects)}, reconnects ${sum((t) => t.reconnects)}, ` +
        `messages ${fmt.int(sum((t) => t.messages))}, closes ${fmt.counts(summed(steadyTotals.map((t) => t.closes)))}); ` +
        `churn ${churnLoad.tally.opened} opened (${churnLoad.tally.droppedAbruptly} abrupt, closed by server ${fmt.counts(churnLoad.tally.closedByServer)}, ` +
        `connect failures ${fmt.counts(churnLoad.tally.connectFailures)}); stalled ${stallLoad.tally.opened}; ` +
        `hostile ${hostileLoad.pacer.started}. Gateway disconnections ${fmt.counts(byLabel(final, 'ws_disconnections_total', 'reason'))}.`,
    );
    if (problems.length) console.log(`\nFirst problems seen by steady clients:\n  ${problems.join('\n  ')}`);
    console.log(
      `\nVerdict:\n${markdownTable(
        ['', 'criterion', 'figures'],
        verdict.map((c) => [c.outcome, c.name, c.figures]),
      )}`,
    );
    const failed = verdict.filter((c) => c.fatal && c.outcome === 'FAIL');
    const path = writeJsonResult('soak', {
      benchmark: 'soak',
      startedAt: new Date(Date.now() - (performance.now() - began)).toISOString(),
      machine,
      loadAverageAtEnd: machineInfo().loadAverage,
      options: { ...opts, products: PRODUCTS, workerThreads: WORKER_THREADS },
      series,
      faults,
      growth: { rss, fdsMinusConnections: fds },
      connections,
      bookDifferences,
      steady: steadyTotals,
      churn: churnLoad.tally,
      stalls: stallLoad.tally,
      hostile: hostileLoad.tally,
      disconnections: byLabel(final, 'ws_disconnections_total', 'reason'),
      verdict,
      gatewayExit,
    });
    console.log(
      `\n${failed.length ? `FAIL (${failed.map((c) => c.name).join('; ')})` : 'PASS'}; wrote ${path}`,
    );
    if (failed.length) process.exitCode = 1;
  } catch (error) {
    if (gateway) {
      const { stdout, stderr } = gateway.outputTail;
      log(`soak failed; the gateway's last output:\n${stdout}${stderr}`);
    }
    throw error;
  } finally {
    await Promise.all(pacers.map((p) => p.stop()));
    for (const s of steady) void s.stop();
    await gateway?.stop();
    await upstream.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 2;
});
