/**
 * Benchmark (issue 7): the gateway side by side with what a Node.js team would use instead, in one
 * run on one machine: raw uWebSockets.js (app.publish), the `ws` package (a broadcast loop over one
 * pre-serialised buffer) and Socket.IO (rooms), each a small server in bench/peers/ running the same
 * open-loop publisher (bench/peers/publisher.ts), and the gateway, built by its own composition root
 * from its environment variables and fed that same publisher through its FeedSource interface
 * (bench/peers/gateway-server.ts; `--gateway-feed simulator`: node dist/src/main.js on its simulator).
 *
 * Scenarios (bench/fanout/scenarios.ts), each against a fresh server process, the servers in
 * alternating order from one point to the next:
 *   fan-out      points of (connections, messages/s per topic), every connection subscribed to every
 *                topic: delivered msg/s, share on schedule, gaps, latency from the scheduled time,
 *                server CPU per delivered message (/proc/<pid>/stat), peak RSS, generator load;
 *   latency      raw uWS and the gateway at the light point, in alternating pairs: the latency
 *                target is a fraction of a millisecond and one run's p50 drifts by as much, so it
 *                is judged on the mean of several runs, with the spread of the pairs' differences;
 *   cpu          raw uWS and the gateway at the heavy point, in alternating pairs: one run's CPU
 *                per message drifts by ±20 %, more than the margin of the target, so the CPU
 *                targets take the mean of every run at their point (ladder and pairs);
 *   connections  a connection storm (accepted/s), then the connections held idle: RSS per connection;
 *   http         (gateway) autocannon on /products, /products/{id}/book?level=2 and /metrics, alone
 *                and while WebSocket clients stream (and what that does to the stream).
 * The issue's targets are computed as ratios and reported, never asserted.
 *
 *   npm run bench                 the full suite (several minutes); writes bench/RESULTS.md too
 *   npm run bench:smoke           every scenario briefly: checks that it works and produces figures
 *   node dist/bench/compare.js --help
 *
 * Writes bench/out/compare-<timestamp>.json and .md.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { PeerKind } from './fanout/client-protocol.js';
import {
  connectionsTable,
  cpuTable,
  fanoutTable,
  httpTable,
  latencyTable,
  type Machine,
  machine,
  machineLine,
  type PairedRun,
  sustainedFigures,
  sustainedTable,
  targets,
  targetsTable,
} from './fanout/report.js';
import {
  type ConnectionsResult,
  type FanoutPoint,
  type FanoutResult,
  type HttpResult,
  runConnections,
  runFanout,
  runHttp,
} from './fanout/scenarios.js';
import { GATEWAY_FEEDS, type GatewayFeed, PEER_KINDS, PEER_NAMES } from './fanout/servers.js';
import { sleep } from './lib/report.js';

const OUT_DIR = fileURLToPath(new URL('../../bench/out/', import.meta.url));
const RESULTS_MD = fileURLToPath(new URL('../../bench/RESULTS.md', import.meta.url));
const RESULTS_START = '<!-- results:start (written by npm run bench) -->';
const RESULTS_END = '<!-- results:end -->';

/**
 * Below this share on schedule at some offered rate, a server is not run again at that rate or a
 * higher one: it cannot sustain them, and an overloaded server makes a run slow to finish.
 */
const GIVE_UP_SHARE = 0.9;

/** Window of each run of the latency and cpu pairs: many short runs, not a few long ones. */
const PAIR_WINDOW_MS = 5000;
const pairWindowMs = (opts: { readonly durationMs: number }) => Math.min(opts.durationMs, PAIR_WINDOW_MS);
const TOPICS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC'];
const SCENARIOS = ['fanout', 'latency', 'cpu', 'connections', 'http'] as const;
type Scenario = (typeof SCENARIOS)[number];

const HELP = `Usage: node dist/bench/compare.js [options]   (npm run bench / npm run bench:smoke)
  --smoke                 every scenario briefly (a check that it works, not a measurement)
  --servers <list>        of ${PEER_KINDS.join(',')} (default: all)
  --gateway-feed <feed>   publisher (default): the peers' open-loop publisher, through the gateway's
                          FeedSource interface; simulator: its built-in simulator, as npm start runs it
  --scenarios <list>      of ${SCENARIOS.join(',')} (default: all)
  --duration <s>          measured seconds per point (default 10; smoke 1)
  --warmup <s>            seconds between connecting and measuring (default 3; smoke 0.3)
  --clients <n>           load-client processes (default 3)
  --points <list>         fan-out points as name:connections:rate-per-topic, comma-separated
                          (default: the ladder in fanoutPoints(); "light" and "heavy" feed the targets)
  --latency-pairs <n>     raw uWS / gateway pairs at the light point for the latency target
                          (default 8; smoke 1), each with a window of at most 5 s
  --cpu-pairs <n>         raw uWS / gateway pairs at the heavy point for the CPU target
                          (default 6; smoke 1), each with a window of at most 5 s
  --idle <n>              connections held at the idle point (default 10000; smoke 500)
  --source-addresses <n>  spread client processes over 127.0.0.2 ... (default 0: the kernel's choice)
  --profile               V8 CPU profiles of every server process into bench/out/profiles-<timestamp>/
  --profile-clients       V8 CPU profiles of the load clients into bench/out/profiles-<timestamp>/clients/
  --no-results            do not rewrite bench/RESULTS.md (a full run does by default)`;

interface Options {
  readonly smoke: boolean;
  readonly servers: readonly PeerKind[];
  readonly gatewayFeed: GatewayFeed;
  readonly scenarios: readonly Scenario[];
  readonly points: readonly FanoutPoint[];
  readonly latencyPairs: number;
  readonly cpuPairs: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly clients: number;
  readonly idleConnections: number;
  readonly sourceAddresses: number;
  readonly profile: boolean;
  readonly profileClients: boolean;
  readonly writeResults: boolean;
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number ≥ 0, got ${raw}`);
  return value;
}

function list<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T[] {
  if (raw === undefined) return [...allowed];
  const values = raw.split(',').map((v) => v.trim());
  const bad = values.filter((v) => !(allowed as readonly string[]).includes(v));
  if (bad.length > 0) throw new Error(`--${name}: unknown ${bad.join(', ')} (known: ${allowed.join(', ')})`);
  return values as T[];
}

function oneOf<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T {
  if (raw === undefined) return allowed[0]!;
  if (!(allowed as readonly string[]).includes(raw))
    throw new Error(`--${name}: unknown ${raw} (known: ${allowed.join(', ')})`);
  return raw as T;
}

function options(): Options | undefined {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      servers: { type: 'string' },
      'gateway-feed': { type: 'string' },
      scenarios: { type: 'string' },
      points: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      clients: { type: 'string' },
      'latency-pairs': { type: 'string' },
      'cpu-pairs': { type: 'string' },
      idle: { type: 'string' },
      'source-addresses': { type: 'string' },
      profile: { type: 'boolean', default: false },
      'profile-clients': { type: 'boolean', default: false },
      'no-results': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return undefined;
  }
  const smoke = values.smoke === true;
  return {
    smoke,
    servers: list('servers', values.servers, PEER_KINDS),
    gatewayFeed: oneOf('gateway-feed', values['gateway-feed'], GATEWAY_FEEDS),
    scenarios: list('scenarios', values.scenarios, SCENARIOS),
    points: values.points === undefined ? fanoutPoints(smoke) : parsePoints(values.points),
    latencyPairs: Math.round(positive('latency-pairs', values['latency-pairs'], smoke ? 1 : 8)),
    cpuPairs: Math.round(positive('cpu-pairs', values['cpu-pairs'], smoke ? 1 : 6)),
    durationMs: positive('duration', values.duration, smoke ? 1 : 10) * 1000,
    warmupMs: positive('warmup', values.warmup, smoke ? 0.3 : 3) * 1000,
    clients: Math.max(1, Math.round(positive('clients', values.clients, 3))),
    idleConnections: Math.round(positive('idle', values.idle, smoke ? 500 : 10_000)),
    sourceAddresses: Math.round(positive('source-addresses', values['source-addresses'], 0)),
    profile: values.profile === true,
    profileClients: values['profile-clients'] === true,
    writeResults: !smoke && values['no-results'] !== true,
  };
}

/** The light point: about one message per topic per event-loop turn (the 10 ms tick at 100/s), 100k msg/s. */
const lightPoint = (smoke: boolean): FanoutPoint => ({
  name: 'light',
  connections: smoke ? 100 : 250,
  ratePerTopic: 100,
});

/** The heavy point: ten messages per topic per turn (1000/s), where uWS batches writes, 200k msg/s. */
const heavyPoint = (smoke: boolean): FanoutPoint => ({
  name: 'heavy',
  connections: smoke ? 20 : 50,
  ratePerTopic: 1000,
});

/**
 * The fan-out points, 4 topics each: "light" and "heavy" (above) twice each (the targets use the
 * mean of all their runs, the latency and cpu pairs' included). The ladder steps raise the
 * connections at 100/s per topic towards the highest rate each server sustains: finely just above
 * the light point, where `ws` and Socket.IO give out, and in steps of at most 1.17× at the top,
 * where raw uWS and the gateway do (about 1.2–1.5M msg/s on the 2-core machine of
 * bench/RESULTS.md). A server that fell short at one offered rate is not run at
 * the same or a higher one (see GIVE_UP_SHARE).
 */
function fanoutPoints(smoke: boolean): FanoutPoint[] {
  const ladder = (thousands: number): FanoutPoint => ({
    name: `ladder-${thousands}k`,
    connections: Math.ceil((thousands * 1000) / (100 * TOPICS.length)),
    ratePerTopic: 100,
  });
  if (smoke) return [lightPoint(true)];
  const heavy = heavyPoint(false);
  return [
    ladder(10),
    ladder(25),
    ladder(50),
    lightPoint(false),
    ladder(125),
    heavy,
    ladder(300),
    lightPoint(false),
    heavy,
    ladder(500),
    ladder(700),
    ladder(900),
    ladder(1050),
    ladder(1200),
    ladder(1350),
    ladder(1500),
  ];
}

function parsePoints(raw: string): FanoutPoint[] {
  return raw.split(',').map((item) => {
    const [name, connections, rate] = item.trim().split(':');
    const point = { name: name ?? '', connections: Number(connections), ratePerTopic: Number(rate) };
    if (!point.name || !(point.connections > 0) || !(point.ratePerTopic > 0))
      throw new Error(`--points: expected name:connections:rate, got ${item}`);
    return point;
  });
}

/** Alternating order: forwards at even points, backwards at odd ones, so drift falls on every server. */
const orderAt = <T>(items: readonly T[], index: number): T[] =>
  index % 2 === 0 ? [...items] : [...items].reverse();

function commandLine(): string {
  const script = process.env.npm_lifecycle_event;
  const args = process.argv.slice(2).join(' ');
  return script
    ? `npm run ${script}${args ? ` -- ${args}` : ''}`
    : `node dist/bench/compare.js ${args}`.trim();
}

interface RunResult {
  readonly benchmark: 'compare';
  readonly startedAt: string;
  readonly command: string;
  readonly machine: Machine;
  readonly loadAverageAtEnd: readonly number[];
  readonly options: Options & { readonly topics: readonly string[] };
  readonly fanout: FanoutResult[];
  /** The latency scenario's runs at the light point, raw uWS and the gateway in alternating pairs. */
  readonly latency: PairedRun[];
  /** The cpu scenario's runs at the heavy point, likewise. */
  readonly cpu: PairedRun[];
  readonly connections: ConnectionsResult[];
  http: HttpResult | undefined;
  readonly failures: string[];
  /** Points a server was not run at, having fallen short at a lower offered rate. */
  readonly skipped: Array<{ readonly point: string; readonly kind: PeerKind }>;
}

function markdown(run: RunResult): string {
  const sustainedList = sustainedFigures(run.fanout, run.options.servers, run.options.topics.length);
  const parts = [
    `Run of ${run.startedAt} — \`${run.command}\``,
    '',
    `Machine: ${machineLine(run.machine)}; at the end ${run.loadAverageAtEnd.map((n) => n.toFixed(2)).join(' ')}.`,
    '',
    run.options.gatewayFeed === 'publisher'
      ? 'Feeds: every server runs the same open-loop publisher; the gateway gets its changes through its FeedSource interface (bench/peers/gateway-server.ts).'
      : 'Feeds: the peers run the open-loop publisher; the gateway runs as `npm start` does, on its simulator at the same rate per product.',
    '',
  ];
  if (run.fanout.length > 0)
    parts.push(
      `### Fan-out (${run.options.topics.length} topics, every connection subscribed to all; ` +
        `${run.options.durationMs / 1000} s windows)`,
      '',
      fanoutTable(run.fanout),
      '',
      sustainedTable(sustainedList),
      '',
    );
  const pairsHeading = (what: string) =>
    `### ${what} (raw uWS and the gateway in alternating pairs, ${pairWindowMs(run.options) / 1000} s windows)`;
  if (run.latency.length > 0)
    parts.push(pairsHeading('Latency at the light point'), '', latencyTable(run.latency), '');
  if (run.cpu.length > 0) parts.push(pairsHeading('CPU at the heavy point'), '', cpuTable(run.cpu), '');
  if (run.skipped.length > 0)
    parts.push(
      `Not run (the server had fallen short at a lower offered rate): ${run.skipped
        .map((s) => `${PEER_NAMES[s.kind]} at ${s.point}`)
        .join(', ')}.`,
      '',
    );
  if (run.connections.length > 0)
    parts.push(
      '### Connection storm and idle connections (each subscribed to one topic, nothing published)',
      '',
      connectionsTable(run.connections),
      '',
    );
  if (run.http)
    parts.push(
      `### HTTP (gateway; autocannon, 10 connections; stream: ${run.http.connections} WebSocket clients at ` +
        `${run.http.ratePerTopic}/s per product)`,
      '',
      httpTable(run.http),
      '',
    );
  const rows = targets(run.fanout, run.latency, run.cpu, sustainedList, run.connections);
  if (rows.length > 0)
    parts.push('### Targets (ratios in this run; reported, not asserted)', '', targetsTable(rows), '');
  if (run.failures.length > 0) parts.push('### Failures', '', ...run.failures.map((f) => `- ${f}`), '');
  return parts.join('\n');
}

function writeOutputs(run: RunResult, md: string): { json: string; md: string } {
  mkdirSync(OUT_DIR, { recursive: true });
  const stamp = run.startedAt.replace(/[:.]/g, '-');
  const json = `${OUT_DIR}compare-${stamp}.json`;
  const mdPath = `${OUT_DIR}compare-${stamp}.md`;
  writeFileSync(json, `${JSON.stringify(run, null, 2)}\n`);
  writeFileSync(mdPath, `${md}\n`);
  return { json, md: mdPath };
}

/** Replaces the generated part of bench/RESULTS.md, keeping what was written around it by hand. */
function writeResultsMd(md: string): void {
  let current = '';
  try {
    current = readFileSync(RESULTS_MD, 'utf8');
  } catch {
    // first run
  }
  const start = current.indexOf(RESULTS_START);
  const end = current.indexOf(RESULTS_END);
  const generated = `${RESULTS_START}\n${md}\n${RESULTS_END}`;
  const next =
    start >= 0 && end > start
      ? `${current.slice(0, start)}${generated}${current.slice(end + RESULTS_END.length)}`
      : `# Benchmark results: the gateway and its peers\n\n${generated}\n${current}`;
  writeFileSync(RESULTS_MD, next.endsWith('\n') ? next : `${next}\n`);
}

async function main(): Promise<void> {
  const opts = options();
  if (!opts) return;
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const log = (line: string) =>
    process.stderr.write(`[bench +${((performance.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
  const profileRoot = `${OUT_DIR}profiles-${startedAt.replace(/[:.]/g, '-')}`;
  const profileDir = opts.profile ? profileRoot : undefined;
  const common = {
    topics: TOPICS,
    clientProcesses: opts.clients,
    seed: 7,
    gatewayFeed: opts.gatewayFeed,
    localAddresses: Array.from({ length: opts.sourceAddresses }, (_, i) => `127.0.0.${i + 2}`),
    cpuProfileDir: profileDir,
    clientProfileDir: opts.profileClients ? `${profileRoot}/clients` : undefined,
  };
  const fanoutSettings = {
    ...common,
    feedOnlyMs: opts.smoke ? 300 : 2000,
    warmupMs: opts.warmupMs,
    durationMs: opts.durationMs,
    graceMs: opts.smoke ? 200 : 1000,
    onScheduleMs: 100,
    connectConcurrency: 64,
  };
  const run: RunResult = {
    benchmark: 'compare',
    startedAt,
    command: commandLine(),
    machine: machine(),
    loadAverageAtEnd: [],
    options: { ...opts, topics: TOPICS },
    fanout: [],
    latency: [],
    cpu: [],
    connections: [],
    http: undefined,
    failures: [],
    skipped: [],
  };
  // Interrupted: keep what was measured so far (not in RESULTS.md), then exit through process.exit,
  // whose handlers kill every server and client process.
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      run.failures.push(`interrupted by ${signal}: the figures above are partial`);
      const paths = writeOutputs({ ...run, loadAverageAtEnd: machine().loadAverage }, markdown(run));
      console.error(`interrupted by ${signal}; partial results: ${paths.json}`);
      process.exit(130);
    });
  const attempt = async <T>(what: string, body: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await body();
    } catch (error) {
      log(`${what} FAILED: ${(error as Error).stack ?? String(error)}`);
      run.failures.push(`${what}: ${(error as Error).message}`);
      return undefined;
    } finally {
      // Let the last run's sockets close and the CPU settle before the next.
      await sleep(opts.smoke ? 100 : 1000);
    }
  };
  /**
   * Raw uWS and the gateway at `point`, `pairs` times in alternating order, in short windows: the
   * targets' figures drift between runs by more than their margins, not within one run.
   */
  const runPairs = async (scenario: string, point: FanoutPoint, pairs: number): Promise<PairedRun[]> => {
    const settings = { ...fanoutSettings, durationMs: pairWindowMs(opts) };
    const runs: PairedRun[] = [];
    for (let pair = 0; pair < pairs; pair++) {
      for (const kind of orderAt(['uws', 'gateway'] as const, pair)) {
        log(`${scenario} pair ${pair + 1}/${pairs}: ${PEER_NAMES[kind]}`);
        const result = await attempt(`${scenario} pair ${pair + 1} ${kind}`, () =>
          runFanout(kind, point, settings, log),
        );
        if (result) {
          runs.push({ ...result, pair });
          log(
            `  p50 ${result.stream.latency.p50.toFixed(2)} ms, ${(result.stream.onScheduleShare * 100).toFixed(2)}% on schedule, ` +
              `${result.cpuPerMessageUs.toFixed(3)} µs CPU/msg`,
          );
        }
      }
    }
    return runs;
  };
  let turn = 0;
  if (opts.scenarios.includes('fanout')) {
    /** Per server: the lowest offered rate (msg/s) at which it fell short. */
    const fellShortAt = new Map<PeerKind, number>();
    for (const point of opts.points) {
      const offered = point.connections * point.ratePerTopic * TOPICS.length;
      for (const kind of orderAt(opts.servers, turn)) {
        if (offered >= (fellShortAt.get(kind) ?? Number.POSITIVE_INFINITY)) {
          log(
            `fan-out ${point.name}: ${PEER_NAMES[kind]} skipped (fell short at ${fellShortAt.get(kind)} msg/s offered)`,
          );
          run.skipped.push({ point: point.name, kind });
          continue;
        }
        log(
          `fan-out ${point.name}: ${PEER_NAMES[kind]}, ${point.connections} connections, ${point.ratePerTopic}/s per topic`,
        );
        const result = await attempt(`fan-out ${point.name} ${kind}`, () =>
          runFanout(kind, point, fanoutSettings, log),
        );
        if (!result)
          fellShortAt.set(kind, Math.min(offered, fellShortAt.get(kind) ?? Number.POSITIVE_INFINITY));
        if (result) {
          run.fanout.push(result);
          if (!(result.stream.onScheduleShare >= GIVE_UP_SHARE))
            fellShortAt.set(kind, Math.min(offered, fellShortAt.get(kind) ?? Number.POSITIVE_INFINITY));
          const s = result.stream;
          log(
            `  ${Math.round(s.deliveredPerSecond)} msg/s, ${(s.onScheduleShare * 100).toFixed(2)}% on schedule, ` +
              `p50 ${s.latency.p50.toFixed(2)} ms, ${result.cpuPerMessageUs.toFixed(3)} µs CPU/msg, ` +
              `generator ELU ${s.generator.maxElu.toFixed(2)}`,
          );
        }
      }
      turn++;
    }
  }
  if (
    opts.scenarios.includes('latency') &&
    opts.servers.includes('uws') &&
    opts.servers.includes('gateway')
  ) {
    run.latency.push(...(await runPairs('latency', lightPoint(opts.smoke), opts.latencyPairs)));
  }
  if (opts.scenarios.includes('cpu') && opts.servers.includes('uws') && opts.servers.includes('gateway')) {
    run.cpu.push(...(await runPairs('cpu', heavyPoint(opts.smoke), opts.cpuPairs)));
  }
  if (opts.scenarios.includes('connections')) {
    for (const kind of orderAt(opts.servers, turn)) {
      log(`connections: ${PEER_NAMES[kind]}, ${opts.idleConnections}`);
      const result = await attempt(`connections ${kind}`, () =>
        runConnections(kind, {
          ...common,
          connections: opts.idleConnections,
          concurrency: 128,
          settleMs: opts.smoke ? 300 : 2000,
        }),
      );
      if (result) {
        run.connections.push(result);
        log(
          `  ${Math.round(result.connect.openedPerSecond)} accepted/s, ` +
            `${(result.rssPerConnectionBytes / 1024).toFixed(1)} KB RSS per connection`,
        );
      }
    }
    turn++;
  }
  if (opts.scenarios.includes('http') && opts.servers.includes('gateway')) {
    log('http: gateway');
    run.http = await attempt('http', () =>
      runHttp(
        {
          ...fanoutSettings,
          durationMs: opts.smoke ? 500 : 5000,
          streamConnections: opts.smoke ? 100 : 1000,
          // The simulator's default rate: a stream that leaves this machine room for the HTTP load.
          ratePerTopic: 20,
          httpConnections: 10,
        },
        log,
      ),
    );
  }
  const finished = { ...run, loadAverageAtEnd: machine().loadAverage };
  const md = markdown(finished);
  const paths = writeOutputs(finished, md);
  if (opts.writeResults) writeResultsMd(md);
  console.log(md);
  console.log(
    `Results: ${paths.json}\n         ${paths.md}${opts.writeResults ? `\n         ${RESULTS_MD}` : ''}`,
  );
  const figures =
    run.fanout.length + run.latency.length + run.cpu.length + run.connections.length + (run.http ? 1 : 0);
  if (run.failures.length > 0 || figures === 0) {
    console.error(`${run.failures.length} scenario(s) failed; ${figures} produced figures`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
